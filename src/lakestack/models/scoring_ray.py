"""Scoring on Ray Data: the input is read and predicted by Ray workers, each loading the model
once; the predictions stream back to the driver, which still writes them in one Delta commit.

Used by `ws.models.score_table(..., engine="ray")`, and by default in a process that already
drives a Ray cluster (a job task on `compute: ray`). Without a cluster, one is started on this
machine for the run and stopped afterwards. Ray is imported only here, and only when used.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as pads

from lakestack.errors import InvalidParameter

if TYPE_CHECKING:
    from lakestack.models.scoring import LoadedModel


class _Predictor:
    """A Ray actor: loads the model from a local copy once, then predicts batch after batch."""

    def __init__(self, model_path: str, name: str, version: int, inputs: list[str] | None, keys: list[str]):
        import mlflow

        from lakestack.models.scoring import LoadedModel

        pyfunc = mlflow.pyfunc.load_model(model_path)
        self._model = LoadedModel(name, version, model_path, pyfunc, None, inputs)
        self._keys = keys

    def __call__(self, batch: pa.Table) -> pa.Table:
        from lakestack.models.scoring import predict_batch

        return predict_batch(None, self._model, batch, self._keys)


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
        concurrency = max(1, min(workers or cpus, cpus))
        with tempfile.TemporaryDirectory(prefix="lakestack-score-") as folder:
            # One download on the driver; workers on this machine load that copy.
            path = mlflow.artifacts.download_artifacts(artifact_uri=model.uri, dst_path=folder)
            data = _dataset(ray, rows, columns)
            predicted = data.map_batches(
                _Predictor,
                fn_constructor_args=(path, model.name, model.version, model.inputs, keys),
                batch_format="pyarrow",
                batch_size=batch_size,
                concurrency=concurrency,
                num_cpus=1,
            )
            for batch in predicted.iter_batches(batch_format="pyarrow", batch_size=None):
                yield _as_table(batch)
    finally:
        if started_here:
            ray.shutdown()


def _dataset(ray: Any, rows: pads.Dataset | pa.Table, columns: list[str] | None) -> Any:
    """A Ray dataset over the pinned input: its Parquet files read by the workers themselves when
    the table is unpartitioned (partition values live in the Delta log, not in the files)."""
    if isinstance(rows, pa.Table):
        return ray.data.from_arrow(rows)
    if isinstance(rows, pads.FileSystemDataset) and not _partitioned(rows):
        return ray.data.read_parquet(list(rows.files), filesystem=rows.filesystem, columns=columns)
    return ray.data.from_arrow(rows.to_table(columns=columns))


def _partitioned(dataset: pads.FileSystemDataset) -> bool:
    return any(
        f.partition_expression is not None and str(f.partition_expression) != "true"
        for f in dataset.get_fragments()
    )


def _as_table(batch: Any) -> pa.Table:
    return batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
