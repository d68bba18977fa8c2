"""The online store: published feature tables served by key (embedded SQLite, or Redis for teams).

`ws.features.publish_table(name)` publishes, `ws.features.get_online_features(name, keys)` and
`ws.features.online_lookup(name)` look up. See `base` for the contract every backend meets.
"""

from __future__ import annotations

import threading
from pathlib import Path

from lakestack.config import OnlineConfig, resolve_sqlite_url
from lakestack.features.online.base import OnlineStore, OnlineTableState
from lakestack.features.online.lookup import OnlineLookup
from lakestack.features.online.publish import PublishResult

__all__ = [
    "OnlineLookup",
    "OnlineStore",
    "OnlineStoreOpener",
    "OnlineTableState",
    "PublishResult",
    "open_store",
]


def open_store(config: OnlineConfig, folder: Path, workspace_name: str) -> OnlineStore:
    """Open the store `config` names; a relative SQLite path is relative to the workspace folder."""
    if config.url.startswith("sqlite:///"):
        from lakestack.features.online.sqlite import SqliteOnlineStore

        return SqliteOnlineStore(Path(resolve_sqlite_url(config.url, folder).removeprefix("sqlite:///")))
    from lakestack.features.online.redis import RedisOnlineStore

    return RedisOnlineStore(config.url, config.prefix(workspace_name))


class OnlineStoreOpener:
    """The workspace's online store, opened on first use only: a workspace that never publishes
    never connects to Redis nor creates `online.db`."""

    def __init__(self, config: OnlineConfig, folder: Path, workspace_name: str) -> None:
        self._args = (config, folder, workspace_name)
        self._store: OnlineStore | None = None
        self._lock = threading.Lock()

    def get(self) -> OnlineStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = open_store(*self._args)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
