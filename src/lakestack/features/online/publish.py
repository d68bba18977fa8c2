"""Publishing a feature table's newest values to an online store, whole or from the change feed.

- snapshot: the newest row per lookup key at Delta version V becomes the whole online table.
- incremental: the change data feed from the last published version + 1 to V is applied. Per
  key the row with the newest timestamp wins, and an upsert carrying an older timestamp than
  the one online never overwrites it. Keys with deletes in the feed are refreshed from the
  table at V (their next-newest row), or deleted online when no row is left.
- An incremental publish falls back to a snapshot when it cannot be exact: nothing published
  yet, different columns, or a change feed that is gone for the range (vacuumed, disabled).
  The result says so, and why.

The freshness timestamp stored with each row (compared with the TTL at lookup) is the row's
timestamp key; for a table without one it is the time of the publish that wrote the row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from lakestack.errors import InvalidParameter, NotFound, PermissionDenied
from lakestack.features.online.base import Key, OnlineStore, OnlineTableState, Row
from lakestack.features.online.codec import column_for, timestamps_us
from lakestack.tables.service import Tables

if TYPE_CHECKING:
    from lakestack.features.store import FeatureTable

Mode = Literal["incremental", "snapshot"]
CHANGE = "_change_type"
COMMIT = "_commit_version"


@dataclass(frozen=True)
class PublishResult:
    """What a publish did. `from_version` is None for a snapshot (it reads version `to_version` whole)."""

    table: str
    mode: Mode
    from_version: int | None
    to_version: int
    rows_written: int
    keys_deleted: int
    seconds: float
    fallback_reason: str | None = None  # why an incremental publish ran as a snapshot
    store: str = ""

    @property
    def up_to_date(self) -> bool:
        """True when there was nothing new to publish."""
        return (
            self.mode == "incremental"
            and self.from_version is not None
            and self.from_version > self.to_version
        )


def publish(
    tables: Tables,
    store: OnlineStore,
    table: FeatureTable,
    mode: Mode,
    ttl: timedelta | None,
    feature_names: list[str] | None,
) -> PublishResult:
    """Publish `table` (described at its current version) to `store`; see the module doc."""
    if mode not in ("incremental", "snapshot"):
        raise InvalidParameter(f"Unknown publish mode {mode!r}: use incremental or snapshot.")
    if ttl is not None and (not isinstance(ttl, timedelta) or ttl <= timedelta(0)):
        raise InvalidParameter(f"The TTL of '{table.name}' must be a positive timedelta, not {ttl!r}.")
    started = time.perf_counter()
    features = _features(table, feature_names)
    keys = table.lookup_keys
    schema = pa.schema([table.schema.field(c) for c in [*keys, *features]])
    for name in schema.names:  # refuse unsupported types before reading anything
        column_for(schema.field(name), is_key=name in keys)
    previous = store.state(table.name)
    now = datetime.now(UTC)
    state = OnlineTableState(
        table=table.name,
        keys=keys,
        timestamp_key=table.timestamp_key,
        schema=schema,
        version=table.version,
        ttl=ttl if ttl is not None else previous.ttl if previous is not None else None,
        published_at=now,
        generation=previous.generation + 1 if previous is not None else 1,
        revision=previous.revision + 1 if previous is not None else 1,
        mode=mode,
    )

    def result(
        used: Mode, start: int | None, written: int, deleted: int, why: str | None = None
    ) -> PublishResult:
        seconds = time.perf_counter() - started
        return PublishResult(
            table.name, used, start, table.version, written, deleted, seconds, why, store.display_url
        )

    reason = None
    if mode == "incremental":
        reason = _why_not_incremental(previous, state)
        if reason is None:
            assert previous is not None
            same = replace(state, generation=previous.generation)
            start = previous.version + 1
            if start > table.version:  # nothing new: record a changed TTL, write no rows
                if same.ttl != previous.ttl:
                    store.write(same, [], [], previous)
                return result("incremental", start, 0, 0)
            try:
                feed = tables.changes(table.name, start, table.version)
            except (NotFound, PermissionDenied):
                raise
            except Exception as exc:  # vacuumed files, a disabled feed, an expired log: all mean "gone"
                detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                reason = f"the change feed of versions {start}-{table.version} is unavailable ({detail})"
            else:
                rows, deletes = _incremental(tables, store, previous, same, feed, now)
                store.write(same, rows, deletes, previous)
                return result("incremental", start, len(rows), len(deletes))
    snapshot = tables.read(table.name, columns=_columns(state), version=table.version)
    rows = _encode(state, _newest(snapshot, keys, state.timestamp_key), now)
    store.write(replace(state, mode="snapshot"), rows, [], previous)
    return result("snapshot", None, len(rows), 0, reason)


def _features(table: FeatureTable, feature_names: list[str] | None) -> list[str]:
    if feature_names is None:
        return list(table.features)
    if isinstance(feature_names, str):
        feature_names = [feature_names]
    unknown = [f for f in feature_names if f not in table.features]
    if unknown:
        raise InvalidParameter(
            f"Feature table '{table.name}' has no feature(s) {', '.join(unknown)}; "
            f"its features are {', '.join(table.features) or '(none)'}."
        )
    return list(dict.fromkeys(feature_names))


def _why_not_incremental(previous: OnlineTableState | None, state: OnlineTableState) -> str | None:
    if previous is None:
        return "the table was not published yet"
    if (
        previous.schema != state.schema
        or previous.keys != state.keys
        or previous.timestamp_key != state.timestamp_key
    ):
        return "the published columns changed"
    if previous.version > state.version:
        return (
            f"the online copy is at version {previous.version}, newer than the table's {state.version} "
            "(was the table re-created?)"
        )
    return None


def _columns(state: OnlineTableState) -> list[str]:
    stamp = [state.timestamp_key] if state.timestamp_key else []
    return [*state.keys, *stamp, *state.features]


def _newest(
    rows: pa.Table, keys: list[str], timestamp_key: str | None, tiebreak: str | None = None
) -> pa.Table:
    """One row per key: the newest by timestamp key (then by `tiebreak` descending)."""
    order = [(k, "ascending") for k in keys]
    if timestamp_key:
        order.append((timestamp_key, "descending"))
    if tiebreak:
        order.append((tiebreak, "descending"))
    if rows.num_rows <= 1 or (len(order) == len(keys) and tiebreak is None):
        return rows  # keys are unique in a table without a timestamp key
    rows = rows.take(pc.sort_indices(rows, sort_keys=order))
    changed = None
    for key in keys:
        column = rows.column(key)
        differs = pc.not_equal(column.slice(1), column.slice(0, rows.num_rows - 1))
        changed = differs if changed is None else pc.or_(changed, differs)
    first = pa.concat_arrays([pa.array([True]), *pc.fill_null(changed, True).chunks])
    return rows.filter(first)


def _encode(state: OnlineTableState, rows: pa.Table, now: datetime) -> list[Row]:
    """Rows as store tuples: (*key, freshness µs, *features)."""
    if rows.num_rows == 0:
        return []
    columns: list[list[Any]] = [c.encode(rows.column(c.name)) for c in state.key_columns]
    if state.timestamp_key:
        columns.append(timestamps_us(rows.column(state.timestamp_key)))
    else:
        columns.append([int(now.timestamp() * 1_000_000)] * rows.num_rows)
    columns += [c.encode(rows.column(c.name)) for c in state.feature_columns.values()]
    return list(zip(*columns, strict=True))


def _key_tuples(state: OnlineTableState, rows: pa.Table) -> list[Key]:
    return list(zip(*(c.encode(rows.column(c.name)) for c in state.key_columns), strict=True))


def _incremental(
    tables: Tables,
    store: OnlineStore,
    previous: OnlineTableState,
    state: OnlineTableState,
    feed: pa.Table,
    now: datetime,
) -> tuple[list[Row], list[Key]]:
    """The rows to upsert and the keys to delete online for the changes in `feed`."""
    kinds = feed.column(CHANGE)
    upserts = feed.filter(pc.is_in(kinds, pa.array(["insert", "update_postimage"])))
    deleted = feed.filter(pc.equal(kinds, "delete"))
    # Keys with a delete anywhere in the range are re-read from the table at the new version:
    # their newest surviving row (if any) is the truth, whatever order the commits came in.
    refresh = list(dict.fromkeys(_key_tuples(state, deleted)))
    rows: list[Row] = []
    removed: list[Key] = []
    if refresh:
        current = _read_keys(tables, state, deleted.select(state.keys))
        survivors = _encode(state, _newest(current, state.keys, state.timestamp_key), now)
        width = len(state.keys)
        alive = {row[:width] for row in survivors}
        rows += survivors
        removed = [k for k in refresh if k not in alive]
    skip = set(refresh)
    newest = _newest(upserts.select([*_columns(state), COMMIT]), state.keys, state.timestamp_key, COMMIT)
    candidates = [row for row in _encode(state, newest, now) if row[: len(state.keys)] not in skip]
    if state.timestamp_key and candidates:
        # Never let a late upsert with an older timestamp replace a newer value already online.
        width = len(state.keys)
        _, online = store.read(state.table, [row[:width] for row in candidates], [], previous)
        candidates = [
            row
            for row, held in zip(candidates, online, strict=True)
            if held is None or int(row[width]) >= int(held[0])  # type: ignore[arg-type]
        ]
    return rows + candidates, removed


def _read_keys(tables: Tables, state: OnlineTableState, keys: pa.Table) -> pa.Table:
    """The table's rows at `state.version` for the given keys (all timestamps)."""
    first = state.keys[0]
    wanted = pc.unique(keys.column(first)).to_pylist()
    rows = tables.read(
        state.table, columns=_columns(state), filters=[(first, "in", wanted)], version=state.version
    )
    if len(state.keys) == 1 or rows.num_rows == 0:
        return rows
    unique = keys.group_by(state.keys).aggregate([])
    return rows.join(unique, keys=state.keys, join_type="left semi")
