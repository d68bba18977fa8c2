"""`OnlineLookup`: a published feature table, ready to be looked up by key many times.

Obtain one with `ws.features.online_lookup(name)` (the grants check happens then, once) and
call it per request: a call reads the rows and the table's revision from the store and
nothing else, so republishing (even with new columns or a new TTL) is picked up at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from lakestack.errors import InvalidParameter, NotPublished
from lakestack.features.online.base import Key, OnlineStore, OnlineTableState, Row
from lakestack.features.online.codec import Column, cast_keys, key_array
from lakestack.tables.arrow import to_arrow


def not_published(table: str) -> NotPublished:
    return NotPublished(
        f"Feature table '{table}' is not published to the online store. Publish it with "
        f"ws.features.publish_table('{table}') or `lakestack features publish {table}`."
    )


class OnlineLookup:
    """Fast lookups of one feature table's newest values by key (see `get` and `get_row`)."""

    def __init__(self, store: OnlineStore, table: str, feature_names: Sequence[str] | None = None) -> None:
        self._store = store
        self.table = table
        self._wanted = None if feature_names is None else list(feature_names)
        state = store.state(table)
        if state is None:
            raise not_published(table)
        self._state = state
        self._check(state)

    def _check(self, state: OnlineTableState) -> None:
        if self._wanted is None:
            return
        unknown = [f for f in self._wanted if f not in state.feature_columns]
        if unknown:
            raise InvalidParameter(
                f"Feature(s) {', '.join(unknown)} of '{self.table}' are not published online; "
                f"published: {', '.join(state.features) or '(none)'}."
            )

    @property
    def state(self) -> OnlineTableState:
        """What is published (as of the last call): keys, features, Delta version, TTL."""
        return self._state

    @property
    def keys(self) -> list[str]:
        return list(self._state.keys)

    @property
    def features(self) -> list[str]:
        return list(self._wanted) if self._wanted is not None else self._state.features

    def _read(
        self, keys: Sequence[Key], features: list[str] | None
    ) -> tuple[OnlineTableState, list[Row | None]]:
        names = features if features is not None else self._state.features
        state, rows = self._store.read(self.table, keys, names, self._state)
        if state is None:
            raise not_published(self.table)
        if state is not self._state:
            self._check(state)
            self._state = state
            if features is None and state.features != names:  # the published columns changed
                state, rows = self._store.read(self.table, keys, state.features, state)
                if state is None:
                    raise not_published(self.table)
        return state, rows

    def _fresh_after(self, state: OnlineTableState) -> int | None:
        """Rows with a freshness timestamp before this (µs) are expired; None = no TTL."""
        if state.ttl is None:
            return None
        return int(time.time() * 1_000_000) - int(state.ttl.total_seconds() * 1_000_000)

    def get_row(self, key: Mapping[str, Any] | Any) -> dict[str, Any]:
        """The features of one key as a dict (nulls when the key is unknown or its values expired).

        `key` is ``{"customer_id": 42}``, or just ``42`` for a table with a single key column.
        """
        state = self._state
        if isinstance(key, Mapping):
            values = [_take(key, k, self.table) for k in state.keys]
        elif len(state.keys) == 1:
            values = [key]
        else:
            raise InvalidParameter(
                f"'{self.table}' has key columns {', '.join(state.keys)}: pass a dict with each of them."
            )
        encoded = tuple(c.coerce([v])[0] for c, v in zip(state.key_columns, values, strict=True))
        state, (row,) = self._read([encoded], self._wanted)
        features = self._wanted if self._wanted is not None else state.features
        limit = self._fresh_after(state)
        if row is None or (limit is not None and int(row[0]) < limit):  # type: ignore[arg-type]
            return dict.fromkeys(features)
        columns = state.feature_columns
        return {f: columns[f].to_python(v) for f, v in zip(features, row[1:], strict=True)}

    def get(self, keys: Any) -> pa.Table:
        """Features for many keys: key columns then features, one row per input row, in input order.

        `keys` is a list of dicts, a dict, or a pandas/polars DataFrame or Arrow table holding the
        key columns (other columns are ignored). Unknown keys and values older than the table's
        TTL come back as nulls.
        """
        state = self._state
        key_arrays, key_values = _key_columns(keys, state.key_columns, self.table)
        encoded: list[Key] = list(zip(*key_values, strict=True))
        state, rows = self._read(encoded, self._wanted)
        features = self._wanted if self._wanted is not None else state.features
        limit = self._fresh_after(state)
        blank = (None,) * (len(features) + 1)
        if limit is not None:
            rows = [None if r is None or int(r[0]) < limit else r for r in rows]  # type: ignore[arg-type]
        by_column = list(zip(*(r if r is not None else blank for r in rows), strict=True)) if rows else []
        columns = {c.name: a for c, a in zip(state.key_columns, key_arrays, strict=True)}
        for index, name in enumerate(features):
            values = by_column[index + 1] if by_column else ()
            columns[name] = state.feature_columns[name].decode(values)
        return pa.table(columns)

    __call__ = get


def _take(key: Mapping[str, Any], name: str, table: str) -> Any:
    try:
        return key[name]
    except KeyError:
        raise InvalidParameter(f"Lookup key '{name}' of '{table}' is missing from {dict(key)!r}.") from None


def _key_columns(
    keys: Any, columns: list[Column], table: str
) -> tuple[list[pa.Array | pa.ChunkedArray], list[list[Any]]]:
    """The caller's key columns cast to the table's key types, as Arrow and as stored scalars."""
    if isinstance(keys, Mapping):
        keys = [keys]
    if isinstance(keys, list):
        if keys and not all(isinstance(k, Mapping) for k in keys):
            raise InvalidParameter(
                f"Keys for '{table}' must be dicts like {{'{columns[0].name}': ...}}, or a DataFrame."
            )
        arrays, values = [], []
        for column in columns:
            raw = [_take(k, column.name, table) for k in keys]
            try:  # the common case: values already of the key's type, no inference, no cast
                array = pa.array(raw, column.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                array = cast_keys(column, key_array(column, raw))
            if array.null_count:
                cast_keys(column, array)  # raises, naming the column
            arrays.append(array)
            plain = int if column.kind == "int" else str if column.kind == "str" else None
            # Stored as given only when already exact Python values ("1" or 1.0 must become 1).
            exact = column.storage == column.type and all(type(v) is plain for v in raw)
            values.append(raw if exact else column.encode(array))
        return arrays, values
    rows = to_arrow(keys)
    missing = [c.name for c in columns if c.name not in rows.column_names]
    if missing:
        raise InvalidParameter(
            f"The keys given for '{table}' lack column(s) {', '.join(missing)}; it is looked up by "
            f"{', '.join(c.name for c in columns)}."
        )
    arrays = [cast_keys(c, rows.column(c.name)) for c in columns]
    return arrays, [c.encode(a) for c, a in zip(columns, arrays, strict=True)]
