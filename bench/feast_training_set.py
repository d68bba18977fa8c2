"""The Feast contender of `bench_training_set.py`: the same training set through Feast's DuckDB
offline store. Runs in its own venv (`make bench-feast` builds `bench/.venv-feast`), since Feast
pins pandas < 3 and lakestack's constraints pin pandas 3; it never imports lakestack.

    bench/.venv-feast/bin/python bench/feast_training_set.py DATA_DIR REPEATS [--out FILE]

DATA_DIR holds `labels.parquet`, `a.parquet` and `b.parquet` (written by the bench). Prints one
JSON line: the seconds of each `get_historical_features(...).to_arrow()` call, the peak RSS of
the process during the calls and its RSS before the first one. With --out, writes the last result as Parquet.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.repo_config import RepoConfig
from feast.types import Float64

from harness import peak_rss_mib, reset_peak_rss, rss_mib

LOOKBACK = timedelta(days=30)


def store(repo: Path, data: Path) -> tuple[FeatureStore, list[str]]:
    """A local Feast repo: DuckDB offline store, one FileSource feature view per table, ttl 30 d."""
    config = RepoConfig(
        project="bench",
        provider="local",
        registry=str(repo / "registry.db"),
        repo_path=str(repo),
        offline_store={"type": "duckdb"},
        online_store={"type": "sqlite", "path": str(repo / "online.db")},
        entity_key_serialization_version=3,
    )
    feature_store = FeatureStore(config=config)
    customer = Entity(name="customer", join_keys=["customer_id"])
    views, refs = [], []
    for name in ("a", "b"):
        features = [f"{name}_{i}" for i in range(5)]
        views.append(
            FeatureView(
                name=name,
                entities=[customer],
                ttl=LOOKBACK,
                schema=[Field(name=f, dtype=Float64) for f in features],
                source=FileSource(path=str(data / f"{name}.parquet"), timestamp_field="ts"),
            )
        )
        refs += [f"{name}:{f}" for f in features]
    feature_store.apply([customer, *views])
    return feature_store, refs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("repeats", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    # Feast takes the entity rows as pandas; converting them is part of what a user does too,
    # but it happens once here, outside the timed call.
    entity_df = pq.read_table(args.data / "labels.parquet").to_pandas()
    with tempfile.TemporaryDirectory(prefix="lakestack-bench-feast-") as repo:
        feature_store, refs = store(Path(repo), args.data)
        baseline = rss_mib()
        reset_peak_rss()
        seconds = []
        for _ in range(args.repeats):
            gc.collect()
            start = time.perf_counter()
            result = feature_store.get_historical_features(entity_df=entity_df, features=refs).to_arrow()
            seconds.append(time.perf_counter() - start)
        if args.out is not None:
            pq.write_table(result, args.out)
    report = {
        "seconds": seconds,
        "rows": result.num_rows,
        "peak_mib": peak_rss_mib(),
        "baseline_mib": baseline,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
