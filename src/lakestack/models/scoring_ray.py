"""Scoring on Ray Data: the input is read and predicted by Ray workers, each loading the model
once; the predictions stream back to the driver, which still writes them in one Delta commit.

Used by `ws.models.score_table(..., engine="ray")`, and by default in a process that already
drives a Ray cluster (a job task on `compute: ray`). Without a cluster, one is started on this
machine for the run and stopped afterwards. Ray is imported only here, and only when used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as pads

from lakestack.errors import InvalidParameter

if TYPE_CHECKING:
    from lakestack.models.scoring import LoadedModel


# Per Ray worker process: the model it loaded last. Ray reuses its worker processes across
# tasks and runs, so each loads a model version once, not once per batch or per run.
_loaded: dict[str, LoadedModel] = {}


def _predict(
    batch: pa.Table, path: str, key: str, name: str, version: int, inputs: list[str] | None, keys: list[str]
) -> pa.Table:
    """Key columns + `prediction` for one batch, in a Ray worker."""
    from lakestack.models.scoring import LoadedModel, predict_batch

    model = _loaded.get(key)
    if model is None:
        import mlflow

        model = LoadedModel(name, version, path, mlflow.pyfunc.load_model(path), None, inputs)
        _loaded.clear()
        _loaded[key] = model
    return predict_batch(None, model, batch, keys)


def predict(
    model: LoadedModel,
    rows: pads.Dataset | pa.Table,
    columns: list[str] | None,
    keys: list[str],
    batch_size: int,
    workers: int | None = None,
) -> Iterator[pa.Table]:
    """Key columns + `prediction` for every input row, computed by Ray workers."""
    if model.spec is not None:
        raise InvalidParameter(
            f"Model '{model.name}' looks its features up from a feature spec, which scoring on Ray "
            "does not do yet: score it with engine='local'."
        )
    try:
        import mlflow
        import ray
    except ImportError:
        raise InvalidParameter("Scoring with engine='ray' needs Ray: pip install 'ray[data]'.") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(include_dashboard=False, log_to_driver=False)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        size = max(1, min(workers or cpus, cpus))
        key = str(model.pyfunc.metadata.model_uuid or model.uri)
        path = _local_copy(mlflow, model.uri, key)
        data = _dataset(ray, rows, columns, blocks=2 * size)
        predicted = data.map_batches(
            _predict,
            fn_kwargs={
                "path": path,
                "key": key,
                "name": model.name,
                "version": model.version,
                "inputs": model.inputs,
                "keys": keys,
            },
            batch_format="pyarrow",
            batch_size=batch_size,
            compute=ray.data.TaskPoolStrategy(size=size),
            num_cpus=1,
        )
        for batch in predicted.iter_batches(batch_format="pyarrow", batch_size=None):
            yield _as_table(batch)
    finally:
        if started_here:
            ray.shutdown()


def _local_copy(mlflow: Any, uri: str, key: str) -> str:
    """The model's files in this user's cache, downloaded once per logged model (its uuid):
    workers on this machine load from there; a version's files never change."""
    root = Path.home() / ".cache" / "lakestack" / "models"
    folder = root / "".join(c if c.isalnum() or c in "-_" else "_" for c in key)
    if not folder.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(staging))
        try:
            os.replace(local, folder)  # atomic: a racing run finds a whole copy or none
        except OSError:
            if not folder.is_dir():
                raise
        shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


def _dataset(ray: Any, rows: pads.Dataset | pa.Table, columns: list[str] | None, blocks: int) -> Any:
    """A Ray dataset over the pinned input: its Parquet files read by the workers themselves when
    the table is unpartitioned (partition values live in the Delta log, not in the files)."""
    if isinstance(rows, pads.FileSystemDataset) and not _partitioned(rows):
        files = list(rows.files)
        return ray.data.read_parquet(
            files, filesystem=rows.filesystem, columns=columns, override_num_blocks=max(blocks, len(files))
        )
    table = rows if isinstance(rows, pa.Table) else rows.to_table(columns=columns)
    step = max(1, -(-table.num_rows // blocks))
    return ray.data.from_arrow([table.slice(i, step) for i in range(0, max(table.num_rows, 1), step)])


def _partitioned(dataset: pads.FileSystemDataset) -> bool:
    return any(
        f.partition_expression is not None and str(f.partition_expression) != "true"
        for f in dataset.get_fragments()
    )


def _as_table(batch: Any) -> pa.Table:
    return batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
