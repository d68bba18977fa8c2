"""The online store contract: what every backend (embedded SQLite, Redis) does, and nothing more.

An online table holds one row per lookup key: the key, a freshness timestamp and the feature
values, stored as plain scalars (see `codec`). Next to the rows a store keeps the table's
published *state*: schema, Delta version, TTL and a revision number bumped by every write.

Rows live in *generations*. A snapshot publish writes a new generation, switches the state to
it and then removes the old one, so readers see either the old table or the new one, never a
half-written one. An incremental publish changes rows of the current generation in place.
Either way a write only lands if the stored revision is still the one the writer read
(compare-and-set), so two publishers racing cannot both win.
"""

from __future__ import annotations

import base64
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from lakestack.errors import Conflict
from lakestack.features.online.codec import Column, Scalar, column_for

Key = tuple[Scalar, ...]
Row = tuple[Scalar, ...]  # (*key, freshness µs, *features), in the state's column order


@dataclass(frozen=True)
class OnlineTableState:
    """What was published for one feature table, and where its rows are."""

    table: str
    keys: list[str]
    timestamp_key: str | None
    schema: pa.Schema  # the key columns, then the features
    version: int  # the Delta version the rows reflect
    ttl: timedelta | None
    published_at: datetime
    generation: int
    revision: int
    mode: str = "snapshot"  # how the last publish ran
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def features(self) -> list[str]:
        return self.schema.names[len(self.keys) :]

    @cached_property
    def key_columns(self) -> list[Column]:
        return [column_for(self.schema.field(k), is_key=True) for k in self.keys]

    @cached_property
    def feature_columns(self) -> dict[str, Column]:
        return {f: column_for(self.schema.field(f)) for f in self.features}

    def to_json(self) -> str:
        return json.dumps(
            {
                "table": self.table,
                "keys": self.keys,
                "timestamp_key": self.timestamp_key,
                "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
                "version": self.version,
                "ttl_seconds": None if self.ttl is None else self.ttl.total_seconds(),
                "published_at": self.published_at.isoformat(),
                "generation": self.generation,
                "revision": self.revision,
                "mode": self.mode,
                "extra": self.extra,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> OnlineTableState:
        raw = json.loads(text)
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(raw["schema"])))
        ttl = raw["ttl_seconds"]
        return cls(
            table=raw["table"],
            keys=list(raw["keys"]),
            timestamp_key=raw["timestamp_key"],
            schema=schema,
            version=int(raw["version"]),
            ttl=None if ttl is None else timedelta(seconds=ttl),
            published_at=datetime.fromisoformat(raw["published_at"]),
            generation=int(raw["generation"]),
            revision=int(raw["revision"]),
            mode=raw.get("mode", "snapshot"),
            extra=dict(raw.get("extra") or {}),
        )


class OnlineStore(ABC):
    """A place to serve feature rows from by key. One conformance suite tests every backend."""

    #: the store's URL with any password hidden, for messages and `workspace info`
    display_url: str

    @abstractmethod
    def state(self, table: str) -> OnlineTableState | None:
        """The published state of `table`, or None when it is not published."""

    @abstractmethod
    def tables(self) -> list[str]:
        """Names of the published tables, sorted."""

    @abstractmethod
    def read(
        self,
        table: str,
        keys: Sequence[Key],
        features: Sequence[str],
        known: OnlineTableState | None = None,
    ) -> tuple[OnlineTableState | None, list[Row | None]]:
        """Rows for `keys` (in order; None where a key is absent) as ``(freshness µs, *features)``.

        Returns the state the rows belong to: `known` itself when it is still current, so a
        caller looking keys up in a loop pays for nothing but the rows.
        """

    @abstractmethod
    def write(
        self,
        state: OnlineTableState,
        rows: Sequence[Row],
        deletes: Sequence[Key],
        expected: OnlineTableState | None,
    ) -> None:
        """Upsert `rows` (whole rows), delete `deletes` and record `state`, all or nothing.

        When `state.generation` differs from `expected`'s (or nothing was published), `rows` are
        the whole new table: readers switch to it at once and the old generation is removed.
        Raises Conflict when the stored revision is no longer `expected`'s.
        """

    @abstractmethod
    def drop(self, table: str) -> bool:
        """Remove the table's rows and state; False when it was not published."""

    def close(self) -> None:  # noqa: B027 - stores without connections have nothing to close
        """Release connections."""


def raced(table: str) -> Conflict:
    return Conflict(
        f"Another publish of '{table}' to the online store finished first; nothing was written. "
        f"Run ws.features.publish_table('{table}') again."
    )


def redact(url: str) -> str:
    """`url` with its password replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (
            f":{parts.port}" if parts.port else ""
        )
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    except ValueError:  # unparseable (a bad port, ...): hide everything between :// and @
        return re.sub(r"(://)[^@/]*@", r"\1***@", url)
