"""The Redis online store, for teams: one hash per key row, every key under the workspace's prefix.

Layout (prefix `lakestack:churn:`):
    lakestack:churn:tables                        set of published table names
    lakestack:churn:state:dev.fs.spend            hash {revision, state (JSON)}
    lakestack:churn:row:dev.fs.spend:3:[42]       hash {_ts, <feature>: value, ...} (nulls absent)
The `3` is the generation, `[42]` the lookup key as JSON. A lookup is one round trip: the
state's revision and every row's HMGET travel in one pipeline. redis-py is imported here only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from lakestack.errors import OnlineStoreUnavailable
from lakestack.features.online.base import Key, OnlineStore, OnlineTableState, Row, raced, redact
from lakestack.features.online.codec import Scalar

TS_FIELD = "_ts"
CHUNK = 2_000  # commands per pipeline round trip when writing


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _value(value: Scalar) -> Any:
    return (b"1" if value else b"0") if isinstance(value, bool) else value


class RedisOnlineStore(OnlineStore):
    """Feature rows in a Redis server (`redis://[:password@]host:port/db`, `rediss://` for TLS)."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._redis = redis
        self.display_url = redact(url)
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)

    # --- keys ----------------------------------------------------------------------------

    def _state_key(self, table: str) -> str:
        return f"{self.prefix}state:{table}"

    def _row_key(self, table: str, generation: int, key: Key) -> str:
        return f"{self.prefix}row:{table}:{generation}:{json.dumps(key, separators=(',', ':'))}"

    def _row_pattern(self, table: str, generation: int | None = None) -> str:
        where = f"{table}:{generation}:" if generation is not None else f"{table}:"
        return _glob_escape(f"{self.prefix}row:{where}") + "*"

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Redis failures as one lakestack error naming the store (never its password)."""
        try:
            yield
        except self._redis.exceptions.WatchError:
            raise
        except self._redis.exceptions.RedisError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise OnlineStoreUnavailable(
                f"Online store {self.display_url} failed: {detail}. Check that Redis is running and "
                "that [online] url in workspace.toml is right."
            ) from None

    # --- state ---------------------------------------------------------------------------

    def state(self, table: str) -> OnlineTableState | None:
        with self._guard():
            raw = self.client.hget(self._state_key(table), "state")
        return None if raw is None else OnlineTableState.from_json(raw)

    def tables(self) -> list[str]:
        with self._guard():
            members = self.client.smembers(f"{self.prefix}tables")
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    # --- reading -------------------------------------------------------------------------

    def read(
        self,
        table: str,
        keys: Sequence[Key],
        features: Sequence[str],
        known: OnlineTableState | None = None,
    ) -> tuple[OnlineTableState | None, list[Row | None]]:
        state = known
        with self._guard():
            for _ in range(3):
                if state is None:
                    state = self.state(table)
                    if state is None:
                        return None, []
                pipe = self.client.pipeline(transaction=False)
                pipe.hget(self._state_key(table), "revision")
                fields = [TS_FIELD, *features]
                for key in keys:
                    pipe.hmget(self._row_key(table, state.generation, key), fields)
                revision, *found = pipe.execute()
                if revision is None:
                    return None, []
                if int(revision) == state.revision:
                    return state, self._decode(state, features, found)
                state = None  # republished meanwhile: read the new state, then the rows again
        raise raced(table)

    def _decode(self, state: OnlineTableState, features: Sequence[str], found: list[Any]) -> list[Row | None]:
        columns = [state.feature_columns[f] for f in features]
        rows: list[Row | None] = []
        for values in found:
            if values[0] is None:
                rows.append(None)
                continue
            decoded: list[Scalar] = [int(values[0])]
            decoded += [c.from_bytes(v) for c, v in zip(columns, values[1:], strict=True)]
            rows.append(tuple(decoded))
        return rows

    # --- writing -------------------------------------------------------------------------

    def _mapping(self, state: OnlineTableState, row: Row) -> dict[str, Any]:
        width = len(state.keys)
        mapping = {TS_FIELD: row[width]}
        for name, value in zip(state.features, row[width + 1 :], strict=True):
            if value is not None:
                mapping[name] = _value(value)
        return mapping

    def _put(self, pipe: Any, state: OnlineTableState, rows: Sequence[Row], replace: bool) -> None:
        width = len(state.keys)
        for row in rows:
            key = self._row_key(state.table, state.generation, row[:width])
            if replace:  # a value that became null must not survive as a stale field
                pipe.delete(key)
            pipe.hset(key, mapping=self._mapping(state, row))

    def _unlink(self, pattern: str) -> None:
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=1_000):
            batch.append(key)
            if len(batch) >= CHUNK:
                self.client.unlink(*batch)
                batch.clear()
        if batch:
            self.client.unlink(*batch)

    def write(
        self,
        state: OnlineTableState,
        rows: Sequence[Row],
        deletes: Sequence[Key],
        expected: OnlineTableState | None,
    ) -> None:
        fresh = expected is None or expected.generation != state.generation
        state_key = self._state_key(state.table)
        with self._guard(), self.client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(state_key)
                stored = pipe.hget(state_key, "revision")
                if (int(stored) if stored is not None else None) != (expected.revision if expected else None):
                    raise raced(state.table)
                if fresh:
                    # A new generation is invisible until the state points at it: write it in
                    # plain pipelined chunks, outside the transaction.
                    self._unlink(self._row_pattern(state.table, state.generation))  # a crashed publish's
                    for start in range(0, len(rows), CHUNK):
                        bulk = self.client.pipeline(transaction=False)
                        self._put(bulk, state, rows[start : start + CHUNK], replace=False)
                        bulk.execute()
                pipe.multi()
                if not fresh:
                    self._put(pipe, state, rows, replace=True)
                    for key in deletes:
                        pipe.delete(self._row_key(state.table, state.generation, key))
                pipe.hset(state_key, mapping={"revision": state.revision, "state": state.to_json()})
                pipe.sadd(f"{self.prefix}tables", state.table)
                pipe.execute()
            except self._redis.exceptions.WatchError:
                if fresh:
                    self._unlink(self._row_pattern(state.table, state.generation))
                raise raced(state.table) from None
        if fresh and expected is not None:
            with self._guard():
                self._unlink(self._row_pattern(state.table, expected.generation))

    def drop(self, table: str) -> bool:
        with self._guard():
            existed = bool(self.client.delete(self._state_key(table)))
            self.client.srem(f"{self.prefix}tables", table)
            self._unlink(self._row_pattern(table))
        return existed

    def close(self) -> None:
        self.client.close()
