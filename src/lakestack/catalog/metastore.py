"""The metastore database: engine, sessions and schema migrations (SQLite or Postgres)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from lakestack.errors import UpgradeRequired

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for Postgres URLs that name no driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL + a generous busy timeout let several processes (jobs, CLI, server) share one file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL syncs at checkpoints instead of on every commit: still corruption-safe,
    # and an audited read no longer pays for an fsync.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@functools.cache
def _head_revision() -> str:
    """The newest migration this lakestack ships; parsed once per process, not per open."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


class Metastore:
    """Owns the SQLAlchemy engine; hands out transactional sessions."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        if self.url.startswith("sqlite"):
            self.engine: Engine = create_engine(self.url, connect_args={"timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    # --- migrations (alembic is imported only here: it is slow to import) -------------------

    def _alembic(self, connection: Any) -> Config:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        return config

    def head_revision(self) -> str:
        return _head_revision()

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema up to `revision` (default: the newest this lakestack knows)."""
        from alembic import command

        with self.engine.begin() as connection:
            command.upgrade(self._alembic(connection), revision)

    def check_current(self, where: str) -> None:
        """Raise unless the schema is exactly what this lakestack expects."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            raise UpgradeRequired(
                f"The metastore of workspace {where} is at revision {current or 'none'}, this lakestack "
                f"needs {head}. Run: lakestack -w {where} workspace upgrade"
            )

    def dispose(self) -> None:
        self.engine.dispose()
