"""End-to-end batch scoring: a Delta table in, a LightGBM model, a Delta table of predictions out.

lakestack: `ws.models.score_table("models:/bench.scoring.model@champion", input, output)`, which
checks the grants, resolves the alias, loads the MLflow model, streams the input in batches
through the pyfunc and writes keys + prediction + model name/version + time in one Delta
commit. Anchor: a minimal hand-written pipeline over the same rows as one Parquet file: read it
with pyarrow, `booster.predict` on the 20 feature columns, write `id` + prediction as Parquet.
The same model file on both sides; both answers are compared. A third row scores on Ray Data
with 2 workers (Ray started once, before the timed runs).

Peak memory: each side runs once more in a fresh process (`python bench_scoring.py --child
SIDE DATA`), reporting its peak RSS and where it stood before the call.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness import Row, child_peak, child_report, peak_rss_mib, reset_peak_rss, rss_mib, skipped, timed

ROWS = {"small": 100_000, "full": 1_000_000}
FEATURES = [f"f{i:02d}" for i in range(20)]
MODEL = "bench.scoring.model"
INPUT, OUTPUT, RAY_OUTPUT = "bench.scoring.input", "bench.scoring.output", "bench.scoring.output_ray"


def make_rows(rows: int) -> pa.Table:
    rng = np.random.default_rng(7)
    values = rng.normal(size=(rows, len(FEATURES)))
    columns: dict[str, Any] = {"id": np.arange(rows, dtype=np.int64)}
    columns.update({name: values[:, i] for i, name in enumerate(FEATURES)})
    return pa.table(columns)


def train(rows: pa.Table) -> Any:
    import lightgbm as lgb

    sample = rows.slice(0, 50_000)
    x = np.column_stack([sample.column(f).to_numpy() for f in FEATURES])
    y = (x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - x[:, 3] > 0).astype(int)
    params = {"objective": "binary", "num_leaves": 31, "verbose": -1, "seed": 7}
    return lgb.train(params, lgb.Dataset(x, y, feature_name=FEATURES), num_boost_round=50)


def setup(data: Path, scale: str) -> int:
    """The workspace with the input table and the registered model, the Parquet file and the
    model file for the anchor."""
    from lakestack import Workspace

    rows = make_rows(ROWS[scale])
    pq.write_table(rows, data / "input.parquet")
    booster = train(rows)
    booster.save_model(str(data / "model.txt"))
    ws = Workspace.init(data / "workspace")
    ws.catalogs.create("bench", exist_ok=True)
    ws.schemas.create("bench.scoring")
    ws.tables.create(INPUT, data=rows)
    with ws.tracking.start_run("bench"):
        example = rows.slice(0, 5).select(FEATURES).to_pandas()
        ws.models.log_model(
            booster,
            "lightgbm",
            registered_model_name=MODEL,
            input_example=example,
            pip_requirements=["lightgbm"],
        )
    ws.models.set_alias(MODEL, "champion", 1)
    ws.close()
    return rows.num_rows


def anchor(data: Path, booster: Any) -> pa.Table:
    """Read Parquet, predict with the bare booster, write Parquet: the least a pipeline can do."""
    rows = pq.read_table(data / "input.parquet")
    x = np.column_stack([rows.column(f).to_numpy() for f in FEATURES])
    out = pa.table({"id": rows.column("id"), "prediction": booster.predict(x)})
    pq.write_table(out, data / "anchor_out.parquet")
    return out


def load_booster(data: Path) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_file=str(data / "model.txt"))


def ours(ws: Any, output: str, engine: str = "local") -> Any:
    return ws.models.score_table(f"models:/{MODEL}@champion", INPUT, output, mode="overwrite", engine=engine)


def same_predictions(ws: Any, output: str, theirs: pa.Table) -> None:
    mine = ws.tables.read(output, columns=["id", "prediction"]).sort_by("id")
    theirs = theirs.sort_by("id")
    if not mine.column("id").equals(theirs.column("id")):
        raise SystemExit(f"{output} does not hold the anchor's ids: the comparison would not be fair.")
    gap = pc.max(pc.abs(pc.subtract(mine.column("prediction"), theirs.column("prediction")))).as_py()
    if gap > 1e-9:
        raise SystemExit(f"{output} predictions differ from the anchor's by up to {gap}.")


def run(scale: str, repeats: int) -> list[Row]:
    from lakestack import Workspace

    with tempfile.TemporaryDirectory(prefix="lakestack-bench-") as tmp:
        data = Path(tmp)
        rows = setup(data, scale)
        booster = load_booster(data)
        ws = Workspace.open(data / "workspace")
        ours(ws, OUTPUT)  # untimed warm-up: imports, model download cache, output table creation
        anchor(data, booster)
        mine, theirs = [], []
        for repeat in range(repeats):
            for side in ("ours", "theirs") if repeat % 2 == 0 else ("theirs", "ours"):
                if side == "ours":
                    mine.append(timed(lambda: ours(ws, OUTPUT))[0])
                else:
                    seconds, their_result = timed(lambda: anchor(data, booster))
                    theirs.append(seconds)
        same_predictions(ws, OUTPUT, their_result)
        print(f"  lakestack gives the anchor's {rows:,} predictions", file=sys.stderr)
        report_throughput("lakestack", rows, mine)
        report_throughput("anchor", rows, theirs)

        print("  peak memory: each side once in a fresh process", file=sys.stderr)
        child = [sys.executable, str(Path(__file__).resolve()), "--child"]
        memory = (child_peak([*child, "lakestack", tmp]), child_peak([*child, "anchor", tmp]))
        name = f"batch scoring: {rows:,} rows x 20 features, LightGBM 50 trees, Delta -> Delta"
        result = [Row(name, mine, theirs, 0.30, peak_mib=memory)]
        result.append(ray_row(ws, data, booster, rows, repeats))
        ws.close()
    return result


def ray_row(ws: Any, data: Path, booster: Any, rows: int, repeats: int) -> Row:
    name = f"the same on Ray Data, 2 workers ({rows:,} rows)"
    try:
        import ray
    except ImportError:
        return skipped(name, "ray is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ours(ws, RAY_OUTPUT, "ray")  # warm-up: worker processes, actor start
        mine, theirs = [], []
        for _ in range(repeats):
            mine.append(timed(lambda: ours(ws, RAY_OUTPUT, "ray"))[0])
            seconds, their_result = timed(lambda: anchor(data, booster))
            theirs.append(seconds)
        same_predictions(ws, RAY_OUTPUT, their_result)
        report_throughput("lakestack on ray", rows, mine)
    finally:
        ray.shutdown()
    return Row(name, mine, theirs, 0.30)


def report_throughput(side: str, rows: int, seconds: list[float]) -> None:
    best, median = min(seconds), sorted(seconds)[len(seconds) // 2]
    print(
        f"  {side}: {rows / median:,.0f} rows/s (median), {rows / best:,.0f} rows/s (best)", file=sys.stderr
    )


def child(side: str, data: Path) -> None:
    """One call of `side` in this fresh process; reports its seconds and memory."""
    if side == "lakestack":
        from lakestack import Workspace

        ws = Workspace.open(data / "workspace")
        import mlflow.lightgbm  # noqa: F401  (imports are the baseline, not the call)

        def call() -> int:
            return int(ours(ws, OUTPUT).rows_scored)
    else:
        booster = load_booster(data)

        def call() -> int:
            return anchor(data, booster).num_rows

    gc.collect()
    baseline = rss_mib()
    reset_peak_rss()
    start = time.perf_counter()
    rows = call()
    seconds = time.perf_counter() - start
    child_report(side=side, seconds=seconds, rows=rows, peak_mib=peak_rss_mib(), baseline_mib=baseline)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one side of the scoring bench, in this process")
    parser.add_argument("--child", choices=["lakestack", "anchor"], required=True)
    parser.add_argument("data", type=Path)
    arguments = parser.parse_args()
    child(arguments.child, arguments.data)
