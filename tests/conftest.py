"""Shared fixtures: workspaces on SQLite and on the real PostgreSQL server; the real Redis server.

`workspace` runs each test twice, once per metastore. PostgreSQL and Redis tests skip when the
server is absent, except under LAKESTACK_REQUIRE_SERVICES=1 (CI), where an absent server is a failure.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakestack import Workspace

PG_ADMIN_URL = os.environ.get("LAKESTACK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LAKESTACK_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("LAKESTACK_REQUIRE_SERVICES") == "1"


def _service_missing(what: str, why: object) -> None:
    message = f"{what} is not reachable ({why})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; LAKESTACK_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import psycopg

    name = f"lakestack_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        _service_missing("PostgreSQL", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    """The Redis server's URL (database 0); skips, or fails under CI, when Redis is not running."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        _service_missing("Redis", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses (tests run in parallel); its keys are deleted afterwards."""
    import redis

    prefix = f"lakestack-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metastore_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None (the default SQLite file inside the workspace) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def workspace(tmp_path: Path, metastore_url: str | None) -> Iterator[Workspace]:
    """An initialised workspace acting as its admin, on each metastore backend."""
    ws = Workspace.init(tmp_path / "ws", metastore_url=metastore_url)
    yield ws
    ws.close()


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on the embedded SQLite metastore only (for tests of storage, not of the metastore)."""
    ws = Workspace.init(tmp_path / "ws")
    yield ws
    ws.close()


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The address of a real local Ray cluster (2 CPUs), started once per test run and shared
    by its xdist workers (see tests/integration/ray_cluster.py). Skips without ray, except
    under LAKESTACK_REQUIRE_SERVICES=1."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        _service_missing("Ray", "the ray package is not installed: pip install -e '.[ray]'")
    from tests.integration import ray_cluster

    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # set in every worker of an xdist run
    with contextlib.ExitStack() as stack:
        try:
            if run_id:
                cluster = stack.enter_context(ray_cluster.shared(run_id))
            else:
                cluster = ray_cluster.start()
                stack.callback(ray_cluster.stop, cluster)
        except RuntimeError as exc:
            _service_missing("Ray", exc)
        # This process is the cluster's driver: it authenticates with the cluster's token.
        saved = {
            key: os.environ.get(key) for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
        }
        os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
        os.environ.update(cluster.auth_env())
        # Ray caches its auth mode and token once imported (an earlier test may have imported it).
        from ray._private.authentication_test_utils import reset_auth_token_state

        reset_auth_token_state()
        stack.callback(reset_auth_token_state)
        stack.callback(_restore_env, saved)
        yield cluster.address
        from lakestack.jobs.executors.ray import disconnect

        disconnect()  # before the cluster stops: a process connected to it exits with it


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
