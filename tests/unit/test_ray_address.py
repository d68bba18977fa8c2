"""Where `compute: ray` tasks go: `[jobs] ray_address` in workspace.toml, LAKESTACK_RAY_ADDRESS."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakestack.config import CONFIG_FILE, WorkspaceConfig
from lakestack.errors import InvalidConfig, JobError
from lakestack.jobs.executors import executor_for
from lakestack.jobs.executors.ray import ADDRESS_ENV, RayExecutor, configured_address


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADDRESS_ENV, raising=False)


def write(folder: Path, jobs: str) -> Path:
    (folder / CONFIG_FILE).write_text(f'name = "w"\n{jobs}')
    return folder


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:6379", "head.example.com:6379", "ray://10.0.0.5:10001", "[::1]:6379", "auto", "local"],
)
def test_a_ray_address_is_read_from_the_jobs_table(tmp_path: Path, address: str) -> None:
    folder = write(tmp_path, f'[jobs]\nray_address = "{address}"\n')
    assert WorkspaceConfig.load(folder).jobs.ray_address == address
    assert configured_address(folder) == address


def test_without_a_jobs_table_ray_picks_as_ray_init_does(tmp_path: Path) -> None:
    assert configured_address(write(tmp_path, "")) is None
    assert configured_address(None) is None


@pytest.mark.parametrize("address", ["http://head:6379", "head", "head:port", "auto; rm -rf /", ""])
def test_a_bad_ray_address_names_the_field_and_the_forms(tmp_path: Path, address: str) -> None:
    folder = write(tmp_path, f'[jobs]\nray_address = "{address}"\n')
    with pytest.raises(InvalidConfig) as error:
        WorkspaceConfig.load(folder)
    assert "'jobs.ray_address'" in error.value.message
    assert (
        "use host:port (a `ray start --head` cluster), ray://host:port, auto or local" in error.value.message
    )


def test_an_unknown_jobs_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match=r"'jobs\.ray_adress'"):
        WorkspaceConfig.load(write(tmp_path, '[jobs]\nray_adress = "auto"\n'))


def test_the_environment_overrides_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write(tmp_path, '[jobs]\nray_address = "127.0.0.1:6379"\n')
    monkeypatch.setenv(ADDRESS_ENV, "ray://10.1.2.3:10001")
    assert configured_address(folder) == "ray://10.1.2.3:10001"
    monkeypatch.setenv(ADDRESS_ENV, "not an address")
    with pytest.raises(JobError, match=f"{ADDRESS_ENV}='not an address' is not a Ray address"):
        configured_address(folder)


def test_the_address_round_trips_through_dump(tmp_path: Path) -> None:
    config = WorkspaceConfig.model_validate({"jobs": {"ray_address": "10.0.0.5:6379"}})
    config.dump(tmp_path)
    assert WorkspaceConfig.load(tmp_path).jobs.ray_address == "10.0.0.5:6379"
    WorkspaceConfig().dump(tmp_path)
    assert "[jobs]" not in (tmp_path / CONFIG_FILE).read_text()


def test_compute_ray_gets_a_ray_executor_for_the_workspaces_cluster_without_connecting(
    tmp_path: Path,
) -> None:
    executor = executor_for("ray", write(tmp_path, '[jobs]\nray_address = "127.0.0.1:6379"\n'))
    assert isinstance(executor, RayExecutor) and executor.address == "127.0.0.1:6379"
    executor.close()
    with pytest.raises(JobError, match=r"compute 'spark' is not known; use compute: local or compute: ray\."):
        executor_for("spark")


def test_ray_is_imported_only_when_a_ray_task_runs() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lakestack.jobs.runner, lakestack.jobs.executors.ray as r; "
        "r.RayExecutor('127.0.0.1:6379').close(); assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
