"""Feature lookups and point-in-time-correct training sets.

Semantics of a lookup with `timestamp_lookup_key` (an "as-of" join):
- the feature row used is the newest one whose timestamp is <= the row's timestamp (inclusive);
- with `lookback_window`, it must also be at most that old (`timedelta(0)` = exact match only);
- when there is none, the features are null, or their `default_values`;
- `default_values` fill misses only: a stored NULL in a matched row stays NULL;
- ties cannot happen: the timestamp key is part of the primary key and writes are upserts,
  so a key has at most one row per timestamp;
- every row of the input is kept, duplicates included, in the input's order.
Without `timestamp_lookup_key`, a table with a timestamp key contributes each key's newest row.
Naive timestamps are taken as UTC.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
from pyarrow import fs as pafs

from lakestack.catalog.names import Name
from lakestack.errors import InvalidParameter
from lakestack.features import asof
from lakestack.tables import observe
from lakestack.tables.arrow import to_arrow
from lakestack.tables.sandbox import lock_down, sandboxed_connection
from lakestack.tables.service import Output, Tables, convert

if TYPE_CHECKING:
    from lakestack.features.store import FeatureTable

ROW_ID = "__lakestack_row"
_FAST_PATH = True  # off: every lookup goes through DuckDB (tests compare the two paths)


@dataclass(frozen=True)
class FeatureLookup:
    """Which features to take from a feature table, matched on which columns of the input."""

    table_name: str
    lookup_key: str | list[str]
    timestamp_lookup_key: str | None = None
    feature_names: list[str] | None = None
    rename_outputs: dict[str, str] | None = None
    default_values: dict[str, Any] | None = None
    lookback_window: timedelta | None = None

    def __post_init__(self) -> None:
        if self.lookback_window is not None:
            if not isinstance(self.lookback_window, timedelta) or self.lookback_window < timedelta(0):
                raise InvalidParameter(
                    f"lookback_window of the lookup on '{self.table_name}' must be a timedelta >= 0."
                )
            if self.timestamp_lookup_key is None:
                raise InvalidParameter(
                    f"lookback_window on '{self.table_name}' needs timestamp_lookup_key: it bounds how old "
                    "a feature may be relative to that timestamp."
                )

    @property
    def keys(self) -> list[str]:
        return [self.lookup_key] if isinstance(self.lookup_key, str) else list(self.lookup_key)


@dataclass(frozen=True)
class _Plan:
    """A lookup resolved against its table at a pinned version."""

    lookup: FeatureLookup
    table: FeatureTable
    features: list[str]
    outputs: list[str]


@dataclass(frozen=True)
class TrainingSet:
    """Input rows joined with features, with every feature table's Delta version pinned."""

    df: pa.Table
    label: list[str]
    exclude_columns: list[str]
    plans: list[_Plan] = field(repr=False)
    tables: Tables = field(repr=False, compare=False)

    @property
    def table_versions(self) -> dict[str, int]:
        """The Delta version of each feature table this training set reads."""
        return {p.table.name: p.table.version for p in self.plans}

    @property
    def feature_columns(self) -> list[str]:
        return [o for p in self.plans for o in p.outputs if o not in self.exclude_columns]

    def feature_spec(self) -> dict[str, Any]:
        """A JSON-ready description: enough to look the same features up again at scoring time."""
        return {
            "label": self.label,
            "exclude_columns": self.exclude_columns,
            "lookups": [
                {
                    "table_name": p.table.name,
                    "table_version": p.table.version,
                    "lookup_key": p.lookup.keys,
                    "primary_keys": p.table.lookup_keys,
                    "timestamp_lookup_key": p.lookup.timestamp_lookup_key,
                    "timestamp_key": p.table.timestamp_key,
                    "features": p.features,
                    "outputs": p.outputs,
                    "default_values": p.lookup.default_values or {},
                    "lookback_seconds": None
                    if p.lookup.lookback_window is None
                    else p.lookup.lookback_window.total_seconds(),
                }
                for p in self.plans
            ],
        }

    def load_df(self, to: Output = "arrow") -> Any:
        """The training data: input columns (minus exclusions) and features, in input order."""
        with observe.consuming(self.lineage_node()):
            return self.join(to)

    def join(self, to: Output = "arrow") -> Any:
        """The same rows as `load_df`, read as plain feature lookups (for scoring): lineage
        links the feature tables to the caller's run directly, not through a training set."""
        table = _join(self.tables, self.df, self.plans)
        return convert(table.drop_columns([c for c in self.exclude_columns if c in table.column_names]), to)

    def lineage_node(self) -> observe.Consumer:
        """How lineage names this training set: a digest of its spec, with its label and tables."""
        spec = json.dumps(self.feature_spec(), sort_keys=True, default=str)
        return observe.Consumer(
            "training_set",
            "ts-" + hashlib.sha256(spec.encode()).hexdigest()[:16],
            {"label": self.label, "tables": self.table_versions, "rows": self.df.num_rows},
        )


def build_training_set(
    tables: Tables,
    df: Any,
    lookups: list[FeatureLookup],
    feature_tables: dict[str, FeatureTable],
    label: str | list[str] | None,
    exclude_columns: list[str],
) -> TrainingSet:
    """Validate the lookups against `df` and the tables, and pin the tables' versions."""
    rows = to_arrow(df)
    labels = [] if label is None else [label] if isinstance(label, str) else list(label)
    missing = [c for c in labels if c not in rows.column_names]
    if missing:
        raise InvalidParameter(f"Label column(s) {', '.join(missing)} are not in the training data.")
    taken = set(rows.column_names)
    plans = []
    for lookup in lookups:
        plan = _plan(lookup, feature_tables[lookup.table_name], rows)
        clash = sorted(taken & set(plan.outputs))
        if clash:
            raise InvalidParameter(
                f"Feature output(s) {', '.join(clash)} from '{plan.table.name}' collide with existing "
                "columns: rename them with rename_outputs."
            )
        taken |= set(plan.outputs)
        plans.append(plan)
    unknown = [c for c in exclude_columns if c not in taken]
    if unknown:
        raise InvalidParameter(
            f"exclude_columns names {', '.join(unknown)}, which the training set does not have."
        )
    return TrainingSet(rows, labels, list(exclude_columns), plans, tables)


def _plan(lookup: FeatureLookup, table: FeatureTable, rows: pa.Table) -> _Plan:
    where = f"the lookup on '{table.name}'"
    absent = [k for k in lookup.keys if k not in rows.column_names]
    if absent:
        raise InvalidParameter(f"Lookup key(s) {', '.join(absent)} of {where} are not columns of the input.")
    if len(lookup.keys) != len(table.lookup_keys):
        raise InvalidParameter(
            f"{where.capitalize()} gives {len(lookup.keys)} key(s) but the table's primary key is "
            f"{', '.join(table.lookup_keys)}: give one input column per key, in that order."
        )
    if lookup.timestamp_lookup_key is not None:
        if table.timestamp_key is None:
            raise InvalidParameter(
                f"'{table.name}' has no timestamp key, so {where} cannot be point in time."
            )
        if lookup.timestamp_lookup_key not in rows.column_names:
            raise InvalidParameter(
                f"timestamp_lookup_key '{lookup.timestamp_lookup_key}' of {where} is not an input column."
            )
    features = list(lookup.feature_names) if lookup.feature_names is not None else list(table.features)
    unknown = [f for f in features if f not in table.features]
    for named in (lookup.rename_outputs or {}, lookup.default_values or {}):
        unknown += [f for f in named if f not in features]
    if unknown:
        raise InvalidParameter(
            f"{where.capitalize()} names unknown feature(s) {', '.join(sorted(set(unknown)))}; "
            f"it has {', '.join(table.features)}."
        )
    renames = lookup.rename_outputs or {}
    return _Plan(lookup, table, features, [renames.get(f, f) for f in features])


def _q(identifier: str) -> str:
    """Quote a column name for DuckDB, whatever characters it holds."""
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    """Quote a string literal for DuckDB (file paths)."""
    return "'" + text.replace("'", "''") + "'"


def _join(tables: Tables, rows: pa.Table, plans: builtins.list[_Plan]) -> pa.Table:
    # Each read checks SELECT and pins the version once, whichever way it is then scanned.
    datasets = [tables.dataset(Name.parse(p.table.name, 3), p.table.version) for p in plans]
    # The binary-search as-of join (`asof.py`) answers the common shapes, in input order, with
    # DuckDB's exact answer; anything it does not handle goes through the DuckDB query below.
    if _FAST_PATH:
        columns = asof.lookup_columns(rows, plans, datasets)
        if columns is not None:
            for name, column in columns:
                rows = rows.append_column(name, column)
            return rows
    files = [_parquet_files(d) for d in datasets]
    found = None
    if any(f is not None for f in files):
        # DuckDB's own Parquet reader is the fast path. Where it refuses what the Arrow dataset
        # reads (a column no file holds yet, a partition column, a file it cannot parse), the
        # Arrow scan below gives the answer, or the error the user sees.
        with contextlib.suppress(duckdb.Error):
            found = _query(rows, plans, datasets, files)
    if found is None:
        try:
            found = _query(rows, plans, datasets, [None] * len(plans))
        except Exception as exc:  # a default of the wrong type, keys of incomparable types, ...
            raise InvalidParameter(f"Building the training set failed: {str(exc).splitlines()[0]}") from None
    return _in_input_order(rows, found)


def _parquet_files(dataset: pads.Dataset) -> builtins.list[str] | None:
    """The local Parquet files behind a pinned version, for DuckDB to read itself; else None.

    `Tables.dataset` has already refused what a plain scan of the files would get wrong
    (deletion vectors, column mapping, reader features it does not know), so the files are
    the version's rows. Remote tables (no httpfs in the sandbox) are scanned through Arrow.
    """
    if not isinstance(dataset, pads.FileSystemDataset):
        return None
    filesystem = dataset.filesystem
    if not isinstance(filesystem, pafs.SubTreeFileSystem) or not isinstance(
        filesystem.base_fs, pafs.LocalFileSystem
    ):
        return None
    paths = [os.path.join(filesystem.base_path, f) for f in dataset.files]
    return paths or None


def _scan(con: Any, dataset: pads.Dataset, files: builtins.list[str], columns: builtins.list[str]) -> str:
    """A DuckDB read of `files` that gives `columns` the types the Arrow dataset would.

    By name across files, so a file written before a column was added reads it as NULL, as
    Delta does. No hive partitioning: partition values of a Delta table live in its log, so a
    partition column is missing from the files and the query fails over to the Arrow scan.
    """
    schema = pa.schema([dataset.schema.field(c) for c in columns])
    types = con.from_arrow(schema.empty_table()).dtypes
    casts = ", ".join(f"CAST({_q(c)} AS {t}) AS {_q(c)}" for c, t in zip(columns, types, strict=True))
    listed = ", ".join(_literal(f) for f in files)
    options = "union_by_name = true, hive_partitioning = false"
    return f"(SELECT {casts} FROM read_parquet([{listed}], {options}))"  # noqa: S608


def _query(
    rows: pa.Table,
    plans: builtins.list[_Plan],
    datasets: builtins.list[pads.Dataset],
    files: builtins.list[builtins.list[str] | None],
) -> pa.Table:
    """Row ids of the input with every lookup's output columns, in no particular order.

    Only the key and timestamp columns of the input go into DuckDB: the other columns never
    need to be moved, and `_in_input_order` puts the features next to them.
    """
    # The SQL is assembled from quoted identifiers (_q), quoted paths (_literal), DuckDB type
    # names and integers only; default values travel as parameters. Hence the S608 suppressions.
    con = sandboxed_connection()
    try:
        probe = list(
            dict.fromkeys(
                c for p in plans for c in [*p.lookup.keys, p.lookup.timestamp_lookup_key] if c is not None
            )
        )
        con.register(
            "__input",
            rows.select(probe).append_column(ROW_ID, pa.array(np.arange(rows.num_rows, dtype=np.int64))),
        )
        ctes, joins, outputs, parameters, readable = [], [], [], [], []
        for i, plan in enumerate(plans):
            table, lookup = plan.table, plan.lookup
            keys = ", ".join(_q(k) for k in table.lookup_keys)
            ts = table.timestamp_key
            needed = list(dict.fromkeys([*table.lookup_keys, *plan.features, *([ts] if ts else [])]))
            listed = files[i]
            if listed is None:
                con.register(f"__feature_{i}", datasets[i])
                source = f"__feature_{i}"
            else:
                source = _scan(con, datasets[i], listed, needed)
                readable += listed
            selected = ", ".join([keys, *(_q(f) for f in plan.features)])
            stamp = f", {_q(ts)} AS __ts" if ts else ""
            newest = ""
            if ts and lookup.timestamp_lookup_key is None:
                newest = f" QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {_q(ts)} DESC) = 1"
            ctes.append(f"f{i} AS (SELECT {selected}{stamp} FROM {source}{newest})")  # noqa: S608
            on = " AND ".join(
                f"i.{_q(a)} = f{i}.{_q(b)}" for a, b in zip(lookup.keys, table.lookup_keys, strict=True)
            )
            # A matched row has a non-null key (it equals the input's), a missed one is all NULL.
            hit = f"f{i}.{_q(table.lookup_keys[0])} IS NOT NULL"
            if lookup.timestamp_lookup_key is not None:
                label_ts = f"i.{_q(lookup.timestamp_lookup_key)}"
                joins.append(f"ASOF LEFT JOIN f{i} ON {on} AND {label_ts} >= f{i}.__ts")
                if lookup.lookback_window is not None:
                    micros = int(lookup.lookback_window / timedelta(microseconds=1))
                    hit += f" AND epoch_us({label_ts}) - epoch_us(f{i}.__ts) <= {micros}"
            else:
                joins.append(f"LEFT JOIN f{i} ON {on}")
            defaults = lookup.default_values or {}
            for feature, output in zip(plan.features, plan.outputs, strict=True):
                fallback = "NULL"
                if feature in defaults:
                    fallback = "?"
                    parameters.append(defaults[feature])
                outputs.append(f"CASE WHEN {hit} THEN f{i}.{_q(feature)} ELSE {fallback} END AS {_q(output)}")
        if readable:  # exactly the pinned version's files, and nothing else, stay readable
            con.execute(f"SET allowed_paths = [{', '.join(_literal(f) for f in readable)}]")
        lock_down(con)
        with_clause = f"WITH {', '.join(ctes)} " if ctes else ""
        columns = ", ".join([f"i.{ROW_ID}", *outputs])
        query = f"{with_clause}SELECT {columns} FROM __input AS i {' '.join(joins)}"  # noqa: S608
        result = con.sql(query, params=parameters or None)
        assert result is not None
        return result.to_arrow_table()
    finally:
        con.close()


def _in_input_order(rows: pa.Table, found: pa.Table) -> pa.Table:
    """The input's columns as they came, then the features, each row back in its input place.

    A scatter by row id instead of an ORDER BY in the query: linear, and the input's own columns
    are not copied at all.
    """
    ids = found.column(ROW_ID).to_numpy()
    features = found.drop_columns([ROW_ID])
    if len(ids) == rows.num_rows:  # a LEFT JOIN keeps every row, so each id is there exactly once
        place = np.empty_like(ids)
        place[ids] = np.arange(len(ids), dtype=ids.dtype)
        features = features.take(place)
    else:  # a feature table with repeated keys matched some rows more than once: keep them all
        order = np.argsort(ids, kind="stable")
        features, rows = features.take(order), rows.take(ids[order])
    for name, column in zip(features.column_names, features.columns, strict=True):
        rows = rows.append_column(name, column)
    return rows
