"""Point-in-time training sets: `TrainingSet.load_df()` against a hand-written DuckDB ASOF JOIN.

Both sides join the same label rows with the same two feature tables (lookback 30 days). The
anchor reads the feature data from plain Parquet files with one ASOF JOIN per table, the
fastest query a person would write by hand; lakestack reads the Delta tables through the
grants check, pins their versions and keeps the input order. Target: at most 1.3x the anchor.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness import Row, timed
from lakestack import FeatureLookup, Workspace

# (label rows, keys, days, rows per feature table): each feature table holds that many distinct
# (key, day) cells out of keys x days (5/9 of them), with 5 features.
SIZES = {"small": (100_000, 10_000, 90, 500_000), "full": (1_000_000, 100_000, 90, 5_000_000)}
START = datetime(2026, 1, 1)
LOOKBACK = timedelta(days=30)


def feature_table(keys: int, days: int, rows: int, prefix: str, rng: np.random.Generator) -> pa.Table:
    """`rows` distinct (key, day) cells, in key then day order, each with 5 float features."""
    cell = np.sort(rng.choice(keys * days, size=rows, replace=False))
    key, day = np.divmod(cell, days)
    ts = np.datetime64(START, "us") + (day * 86_400_000_000).astype("timedelta64[us]")
    columns = {"customer_id": key, "ts": ts}
    columns |= {f"{prefix}_{i}": rng.normal(size=rows) for i in range(5)}
    return pa.table(columns)


def labels(rows: int, keys: int, days: int, rng: np.random.Generator) -> pa.Table:
    offset = rng.integers(0, days * 86_400, size=rows) * 1_000_000
    return pa.table(
        {
            "customer_id": rng.integers(0, keys, size=rows),
            "label_ts": np.datetime64(START, "us") + offset.astype("timedelta64[us]"),
            "label": rng.integers(0, 2, size=rows),
        }
    )


ANCHOR_SQL = """
SELECT l.*, {outputs}
FROM labels AS l
ASOF LEFT JOIN read_parquet('{a}') AS a ON l.customer_id = a.customer_id AND l.label_ts >= a.ts
ASOF LEFT JOIN read_parquet('{b}') AS b ON l.customer_id = b.customer_id AND l.label_ts >= b.ts
"""


def anchor(label_rows: pa.Table, a: Path, b: Path) -> pa.Table:
    outputs = ", ".join(
        f"CASE WHEN l.label_ts - {t}.ts <= INTERVAL 30 DAY THEN {t}.{t}_{i} END AS {t}_{i}"
        for t in ("a", "b")
        for i in range(5)
    )
    con = duckdb.connect()
    con.register("labels", label_rows)
    result = con.sql(ANCHOR_SQL.format(outputs=outputs, a=a, b=b)).to_arrow_table()
    con.close()
    return result


def run(scale: str, repeats: int) -> list[Row]:
    rows, keys, days, feature_rows = SIZES[scale]
    rng = np.random.default_rng(7)
    print(
        f"  generating {rows:,} labels and 2 feature tables over {keys:,} keys x {days} days", file=sys.stderr
    )
    tables = {n: feature_table(keys, days, feature_rows, n, rng) for n in ("a", "b")}
    label_rows = labels(rows, keys, days, rng)
    with tempfile.TemporaryDirectory(prefix="lakestack-bench-") as tmp:
        ws = Workspace.init(Path(tmp) / "workspace")
        ws.schemas.create("dev.bench")
        paths = {}
        for name, table in tables.items():
            ws.features.create_table(
                f"dev.bench.{name}", primary_keys="customer_id", timestamp_key="ts", df=table
            )
            paths[name] = Path(tmp) / f"{name}.parquet"
            pq.write_table(table, paths[name])
        training = ws.features.create_training_set(
            label_rows,
            [
                FeatureLookup(
                    f"dev.bench.{n}", "customer_id", timestamp_lookup_key="label_ts", lookback_window=LOOKBACK
                )
                for n in tables
            ],
            label="label",
        )
        ours, theirs = [], []
        for _ in range(repeats):
            seconds, ours_result = timed(training.load_df)
            ours.append(seconds)
            seconds, their_result = timed(lambda: anchor(label_rows, paths["a"], paths["b"]))
            theirs.append(seconds)
        assert ours_result.num_rows == their_result.num_rows == rows
        ws.close()
    print(f"  {rows:,} labels x 2 tables of ~{tables['a'].num_rows:,} rows", file=sys.stderr)
    return [
        Row(f"training set: {rows:,} labels x 2 feature tables (as-of, 30 d lookback)", ours, theirs, 0.30)
    ]
