"""Point-in-time training sets: `TrainingSet.load_df()` against a hand-written DuckDB ASOF JOIN,
and against Feast's DuckDB offline store.

All sides join the same label rows with the same two feature tables (lookback 30 days). The
anchor reads the feature data from plain Parquet files with one ASOF JOIN per table, the
fastest query a person would write by hand; lakestack reads the Delta tables through the
grants check, pins their versions and keeps the input order. Target: at most 1.3x the anchor.

Feast (`feast_training_set.py`, in its own venv `bench/.venv-feast`: `make bench-feast`) reads
the same Parquet files as the anchor, one FeatureView per table with ttl = 30 days. Target:
lakestack at least 10x faster. Without that venv the row is skipped, with a note.

Peak memory: each side runs once more in a fresh process (`python bench_training_set.py --child
SIDE DIR`), which reports its peak RSS during the call (Linux VmHWM, reset just before it) and
its RSS just before the call.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness import (
    Memory,
    Row,
    child_peak,
    child_report,
    child_run,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
    skipped,
    timed,
)

if TYPE_CHECKING:  # imported where used: the anchor's child process never loads lakestack
    from lakestack import FeatureLookup

# (label rows, keys, days, rows per feature table): each feature table holds that many distinct
# (key, day) cells out of keys x days (5/9 of them), with 5 features.
SIZES = {"small": (100_000, 10_000, 90, 500_000), "full": (1_000_000, 100_000, 90, 5_000_000)}
START = datetime(2026, 1, 1)
LOOKBACK = timedelta(days=30)
BENCH_DIR = Path(__file__).resolve().parent
FEAST_PYTHON = BENCH_DIR / ".venv-feast" / "bin" / "python"
TABLES = ("a", "b")


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
        for t in TABLES
        for i in range(5)
    )
    con = duckdb.connect()
    con.register("labels", label_rows)
    result = con.sql(ANCHOR_SQL.format(outputs=outputs, a=a, b=b)).to_arrow_table()
    con.close()
    return result


def lookups() -> list[FeatureLookup]:
    from lakestack import FeatureLookup

    return [
        FeatureLookup(
            f"dev.bench.{n}", "customer_id", timestamp_lookup_key="label_ts", lookback_window=LOOKBACK
        )
        for n in TABLES
    ]


def write_data(data: Path, scale: str) -> tuple[pa.Table, int]:
    """Labels and both feature tables: as Delta feature tables in a workspace, and as Parquet."""
    from lakestack import Workspace

    rows, keys, days, feature_rows = SIZES[scale]
    rng = np.random.default_rng(7)
    print(
        f"  generating {rows:,} labels and 2 feature tables of {feature_rows:,} rows over "
        f"{keys:,} keys x {days} days",
        file=sys.stderr,
    )
    tables = {n: feature_table(keys, days, feature_rows, n, rng) for n in TABLES}
    label_rows = labels(rows, keys, days, rng)
    ws = Workspace.init(data / "workspace")
    ws.schemas.create("dev.bench")
    for name, table in tables.items():
        ws.features.create_table(
            f"dev.bench.{name}", primary_keys="customer_id", timestamp_key="ts", df=table
        )
        pq.write_table(table, data / f"{name}.parquet")
    pq.write_table(label_rows, data / "labels.parquet")
    ws.close()
    return label_rows, feature_rows


def sorted_rows(table: pa.Table) -> pa.Table:
    """Rows in one canonical order, for comparing answers that come back in different orders."""
    naive = table.set_column(
        table.schema.get_field_index("label_ts"),
        "label_ts",
        pc.cast(table.column("label_ts"), pa.timestamp("us")),
    )
    return naive.sort_by([("customer_id", "ascending"), ("label_ts", "ascending"), ("label", "ascending")])


def run_feast(data: Path, repeats: int, ours: pa.Table) -> tuple[list[float], Memory] | None:
    """Feast's seconds per call and its process's memory, after checking that it gives lakestack's
    answer; None when its venv is missing."""
    if not FEAST_PYTHON.exists():
        return None
    print(f"  feast: {repeats} calls in a fresh {FEAST_PYTHON.parent.parent.name} process", file=sys.stderr)
    out = data / "feast.parquet"
    script = str(BENCH_DIR / "feast_training_set.py")
    report = child_run([str(FEAST_PYTHON), script, str(data), str(repeats), "--out", str(out)])
    theirs = pq.read_table(out).select(ours.column_names)
    if not sorted_rows(theirs).equals(sorted_rows(ours)):
        raise SystemExit("Feast's training set differs from lakestack's: the comparison would not be fair.")
    print(f"  feast gives the same {theirs.num_rows:,} rows and values as lakestack", file=sys.stderr)
    seconds = [float(s) for s in report["seconds"]]
    return seconds, Memory(float(report["peak_mib"]), float(report["baseline_mib"]))


def run(scale: str, repeats: int) -> list[Row]:
    from lakestack import Workspace

    with tempfile.TemporaryDirectory(prefix="lakestack-bench-") as tmp:
        data = Path(tmp)
        label_rows, feature_rows = write_data(data, scale)
        rows = label_rows.num_rows
        ws = Workspace.open(data / "workspace")
        training = ws.features.create_training_set(label_rows, lookups(), label="label")
        ours, theirs = [], []
        for repeat in range(repeats):
            # Which side goes first alternates, so neither always gets the warmer cache.
            for side in ("ours", "theirs") if repeat % 2 == 0 else ("theirs", "ours"):
                if side == "ours":
                    seconds, ours_result = timed(training.load_df)
                    ours.append(seconds)
                else:
                    seconds, their_result = timed(
                        lambda: anchor(label_rows, data / "a.parquet", data / "b.parquet")
                    )
                    theirs.append(seconds)
        assert ours_result.num_rows == their_result.num_rows == rows
        assert ours_result.select(label_rows.column_names).equals(label_rows), "input order kept"
        assert sorted_rows(ours_result).equals(sorted_rows(their_result.select(ours_result.column_names)))
        ws.close()
        del their_result, training
        gc.collect()

        print("  peak memory: each side once in a fresh process", file=sys.stderr)
        child = [sys.executable, str(Path(__file__).resolve()), "--child"]
        memory = (child_peak([*child, "lakestack", tmp]), child_peak([*child, "duckdb", tmp]))
        name = f"training set: {rows:,} labels x 2 tables of {feature_rows:,} rows (as-of, 30 d lookback)"
        result = [Row(name, ours, theirs, 0.30, peak_mib=memory)]

        vs_feast = "the same, anchor Feast 0.67 (DuckDB offline store)"
        feast = run_feast(data, repeats, ours_result)
        if feast is None:
            venv = FEAST_PYTHON.parent.parent.relative_to(BENCH_DIR.parent)
            result.append(skipped(vs_feast, f"no {venv}: `make bench-feast` builds it"))
        else:
            # Feast's calls ran after lakestack's, in their own process: paired in order all the same.
            feast_seconds, feast_memory = feast
            result.append(
                Row(vs_feast, ours, feast_seconds, -0.90, anchor="feast", peak_mib=(memory[0], feast_memory))
            )
    print(f"  {rows:,} labels x 2 tables of {feature_rows:,} rows", file=sys.stderr)
    return result


def child(side: str, data: Path) -> None:
    """One call of `side` in this fresh process; reports its seconds and memory."""
    label_rows = pq.read_table(data / "labels.parquet")
    call: Callable[[], pa.Table]
    if side == "lakestack":
        from lakestack import Workspace

        ws = Workspace.open(data / "workspace")
        training = ws.features.create_training_set(label_rows, lookups(), label="label")
        call = training.load_df
    else:

        def call() -> pa.Table:
            return anchor(label_rows, data / "a.parquet", data / "b.parquet")

    gc.collect()
    baseline = rss_mib()
    reset_peak_rss()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    child_report(
        side=side, seconds=seconds, rows=result.num_rows, peak_mib=peak_rss_mib(), baseline_mib=baseline
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one side of the training-set bench, in this process")
    parser.add_argument("--child", choices=["lakestack", "duckdb"], required=True)
    parser.add_argument("data", type=Path)
    arguments = parser.parse_args()
    child(arguments.child, arguments.data)
