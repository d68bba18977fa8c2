"""`ws.features`: feature tables (governed Delta tables with primary keys) and training sets.

A feature table is an ordinary workspace table whose properties name its primary keys and,
optionally, a timestamp key (part of the primary key). Writes are merge-only upserts on the
full key, so there is at most one row per key and timestamp: point-in-time lookups never
meet a tie. Reads, history, time travel and grants are those of `ws.tables`.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakestack.catalog.privileges import Privilege
from lakestack.errors import InvalidParameter, SchemaMismatch
from lakestack.features.training import FeatureLookup, TrainingSet, build_training_set
from lakestack.tables.arrow import to_arrow
from lakestack.tables.delta import HistoryEntry
from lakestack.tables.expectations import Expectation
from lakestack.tables.service import Output, Tables, WriteResult, convert

if TYPE_CHECKING:
    from lakestack.features.online import OnlineLookup, OnlineStore, OnlineStoreOpener, PublishResult

PRIMARY_KEYS = "lakestack.feature.primary_keys"
TIMESTAMP_KEY = "lakestack.feature.timestamp_key"
TAGS = "lakestack.feature.tags"


@dataclass(frozen=True)
class FeatureTable:
    """A feature table: its keys, its features (every other column) and its current version."""

    name: str
    primary_keys: list[str]
    timestamp_key: str | None
    features: list[str]
    schema: pa.Schema
    version: int
    description: str | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def lookup_keys(self) -> list[str]:
        """The primary keys a lookup matches on (all of them except the timestamp key)."""
        return [k for k in self.primary_keys if k != self.timestamp_key]


class FeatureStore:
    def __init__(self, tables: Tables, online: OnlineStoreOpener | None = None) -> None:
        self._tables = tables
        self._online = online

    def _online_store(self) -> OnlineStore:
        if self._online is None:
            raise InvalidParameter("This feature store has no online store configured.")
        return self._online.get()

    def close(self) -> None:
        """Close the connection to the online store, if one was opened."""
        if self._online is not None:
            self._online.close()

    def create_table(
        self,
        name: str,
        primary_keys: str | list[str],
        timestamp_key: str | None = None,
        schema: pa.Schema | None = None,
        df: Any = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> FeatureTable:
        """Create a feature table from a schema or from data (written as version 0).

        The timestamp key, when given, becomes part of the primary key. Key columns may never
        be null, and `df` may hold each key (with its timestamp) only once.
        """
        keys = [primary_keys] if isinstance(primary_keys, str) else list(primary_keys)
        if timestamp_key is not None and timestamp_key not in keys:
            keys.append(timestamp_key)
        if not keys:
            raise InvalidParameter(f"Feature table '{name}' needs at least one primary key.")
        rows = to_arrow(df) if df is not None else None
        columns = (rows.schema if rows is not None else schema or pa.schema([])).names
        missing = [k for k in keys if k not in columns]
        if missing:
            raise SchemaMismatch(
                f"Primary key column(s) {', '.join(missing)} of '{name}' are not in its schema."
            )
        if timestamp_key is not None:
            ts_type = (rows.schema if rows is not None else schema).field(timestamp_key).type  # type: ignore[union-attr]
            if not (pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type)):
                raise SchemaMismatch(
                    f"Timestamp key '{timestamp_key}' of '{name}' is {ts_type}, not a timestamp."
                )
        if rows is not None:
            _require_unique_keys(rows, keys, name)
        properties = {PRIMARY_KEYS: json.dumps(keys), TAGS: json.dumps(tags or {})}
        if timestamp_key is not None:
            properties[TIMESTAMP_KEY] = timestamp_key
        key_checks = [Expectation(f"{k}_not_null", f'"{k}" IS NOT NULL', "fail") for k in keys]
        self._tables.create(
            name,
            schema=schema,
            data=rows,
            comment=description,
            properties=properties,
            expectations=key_checks,
        )
        return self.get_table(name)

    def get_table(self, name: str) -> FeatureTable:
        """Describe a feature table; needs SELECT. Raises if the table has no primary keys."""
        info = self._tables.get(name)
        if PRIMARY_KEYS not in info.properties:
            raise InvalidParameter(
                f"Table '{info.name}' is not a feature table (it has no primary keys). "
                "Create one with ws.features.create_table(name, primary_keys=...)."
            )
        keys = json.loads(info.properties[PRIMARY_KEYS])
        return FeatureTable(
            name=info.name,
            primary_keys=keys,
            timestamp_key=info.properties.get(TIMESTAMP_KEY),
            features=[f for f in info.schema.names if f not in keys],
            schema=info.schema,
            version=info.version,
            description=info.comment,
            tags=json.loads(info.properties.get(TAGS, "{}")),
        )

    def write_table(self, name: str, df: Any, evolve_schema: bool = False) -> WriteResult:
        """Upsert rows on the primary key (merge-only). `evolve_schema` adds new columns as features."""
        table = self.get_table(name)
        return self._tables.merge(name, df, keys=table.primary_keys, evolve_schema=evolve_schema)

    def read_table(
        self,
        name: str,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        to: Any = "arrow",
    ) -> Any:
        """Read a feature table, now or at a version or time (needs SELECT)."""
        self.get_table(name)
        return self._tables.read(name, version=version, timestamp=timestamp, to=to)

    def history(self, name: str, limit: int | None = None) -> builtins.list[HistoryEntry]:
        return self._tables.history(name, limit)

    def drop_table(self, name: str) -> None:
        """Drop a feature table and its data, and its online copy when published (needs MANAGE)."""
        table = self.get_table(name)
        self._tables.check_access(table.name, Privilege.MANAGE, "features.drop")
        if self._online is not None:
            self._online_store().drop(table.name)
        self._tables.drop(name)

    # --- online store ----------------------------------------------------------------------

    def publish_table(
        self,
        name: str,
        mode: str = "incremental",
        ttl: timedelta | None = None,
        feature_names: builtins.list[str] | None = None,
    ) -> PublishResult:
        """Publish the table's newest value per key to the online store (needs SELECT and MODIFY).

        `incremental` (default) applies the Delta change feed since the last publish, and falls
        back to a full `snapshot` when it cannot (first publish, new columns, vacuumed feed);
        the result says which ran and why. `ttl` is stored with the online table: values older
        than it (by the timestamp key, or by publish time for tables without one) are looked up
        as nulls; None keeps the TTL already published. `feature_names` publishes a subset.
        """
        from lakestack.features.online.publish import publish

        table = self.get_table(name)
        self._tables.check_access(table.name, Privilege.MODIFY, "features.publish")
        return publish(self._tables, self._online_store(), table, mode, ttl, feature_names)  # type: ignore[arg-type]

    def unpublish_table(self, name: str) -> bool:
        """Remove a table's online copy (needs MODIFY); False when it was not published."""
        checked = self._tables.check_access(name, Privilege.MODIFY, "features.unpublish")
        return self._online_store().drop(checked)

    def online_lookup(self, name: str, feature_names: builtins.list[str] | None = None) -> OnlineLookup:
        """A reusable lookup of a published table's features by key (needs SELECT, checked now).

        Obtain it once and call `lookup.get(keys)` (an Arrow table) or `lookup.get_row(key)` (a
        dict) per request: no grants check, no metastore query, one store round trip.
        """
        from lakestack.features.online.lookup import OnlineLookup

        checked = self._tables.check_access(name, Privilege.SELECT, "features.online_lookup")
        return OnlineLookup(self._online_store(), checked, feature_names)

    def get_online_features(
        self, name: str, keys: Any, feature_names: builtins.list[str] | None = None, to: Output = "arrow"
    ) -> Any:
        """The newest published features for `keys` (needs SELECT), one row per key in input order.

        `keys` is a list of dicts (``[{"customer_id": 42}]``), a dict, or a DataFrame/Arrow table of
        the key columns. Returns the key columns then the features; unknown keys, and values older
        than the table's TTL, are nulls. For many calls, use `online_lookup(name)` once instead.
        """
        return convert(self.online_lookup(name, feature_names).get(keys), to)

    def create_training_set(
        self,
        df: Any,
        feature_lookups: builtins.list[FeatureLookup],
        label: str | builtins.list[str] | None,
        exclude_columns: builtins.list[str] | None = None,
    ) -> TrainingSet:
        """Join features onto `df` (keys, timestamps, labels) point in time; see `FeatureLookup`.

        Each feature table's current version is pinned in the spec, so `load_df()` returns the
        same rows however the tables change later.
        """
        tables = {lookup.table_name: self.get_table(lookup.table_name) for lookup in feature_lookups}
        return build_training_set(self._tables, df, feature_lookups, tables, label, exclude_columns or [])


def _require_unique_keys(rows: pa.Table, keys: list[str], name: str) -> None:
    counts = rows.group_by(keys).aggregate([([], "count_all")])
    if counts.num_rows != rows.num_rows:
        raise InvalidParameter(
            f"Data for feature table '{name}' repeats {rows.num_rows - counts.num_rows} primary key(s) "
            f"({', '.join(keys)}); keep one row per key."
        )
