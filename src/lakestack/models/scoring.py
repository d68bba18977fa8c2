"""Batch and incremental scoring of a Delta table with a registered model (`ws.models.score_table`).

The input is read in bounded batches (a pinned version, or the change feed since the last run),
each batch is predicted (its features looked up first when the model carries a feature spec),
and every prediction goes to the output table in ONE Delta commit, together with the checkpoint
of incremental scoring (see `streaming`). A crash anywhere before that commit leaves the output
and its checkpoint exactly as they were.

Output rows: the input's key columns, `prediction`, `model_name`, `model_version` and
`scored_at` (one timestamp per run). `append` keeps every run (history accumulates),
`overwrite` keeps only this run, `merge` keeps one row per key (the newest prediction).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import DeltaTable

from lakestack.catalog.names import Name
from lakestack.catalog.privileges import Privilege
from lakestack.errors import ChangesUnavailable, InvalidParameter, SchemaMismatch
from lakestack.lineage.service import Lineage
from lakestack.lineage.store import NodeRef
from lakestack.models import feature_models, streaming
from lakestack.models.scoring_commit import (
    META_COLUMNS,
    ScoreResult,
    ScoringRun,
)
from lakestack.tables.delta import DeltaLocation
from lakestack.tables.service import Tables

if TYPE_CHECKING:
    from lakestack.features.store import FeatureStore
    from lakestack.models.registry import ModelRegistry, ModelVersionInfo

Mode = Literal["append", "overwrite", "merge"]
Engine = Literal["auto", "local", "ray"]
Progress = Callable[[int, int | None], None]
MODES = ("append", "overwrite", "merge")
ENGINES = ("auto", "local", "ray")
DEFAULT_BATCH_SIZE = 100_000


@dataclass(frozen=True)
class LoadedModel:
    """A model version ready to predict: the pyfunc, its feature spec and its input columns."""

    name: str
    version: int
    uri: str
    pyfunc: Any
    spec: dict[str, Any] | None
    inputs: list[str] | None  # the signature's input columns, when it has a named one


def load(resolved: ModelVersionInfo) -> LoadedModel:
    """Load an already-resolved (and grant-checked) version with its spec and signature."""
    import mlflow

    info = mlflow.models.get_model_info(resolved.uri)
    spec = (info.metadata or {}).get(feature_models.METADATA_KEY, {}).get("feature_spec")
    signature = info.signature
    inputs = None
    if signature is not None and signature.inputs is not None and signature.inputs.has_input_names():
        inputs = list(signature.inputs.input_names())
    pyfunc = mlflow.pyfunc.load_model(resolved.uri)
    return LoadedModel(resolved.name, resolved.version, resolved.uri, pyfunc, spec, inputs)


def score_table(
    registry: ModelRegistry,
    tables: Tables,
    features: FeatureStore,
    lineage: Lineage,
    storage_options: dict[str, str],
    principal: str,
    model_uri: str,
    input_table: str,
    output_table: str,
    mode: Mode = "append",
    keys: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    incremental: bool = False,
    engine: Engine = "auto",
    progress: Progress | None = None,
) -> ScoreResult:
    """Score `input_table` with `model_uri` into `output_table`; see `ModelRegistry.score_table`."""
    started = time.perf_counter()
    if mode not in MODES:
        raise InvalidParameter(f"Unknown scoring mode {mode!r}: use append, overwrite or merge.")
    if engine not in ENGINES:
        raise InvalidParameter(f"Unknown scoring engine {engine!r}: use auto, local or ray.")
    if batch_size < 1:
        raise InvalidParameter(f"batch_size must be at least 1, not {batch_size}.")
    source_name, target_name = str(Name.parse(input_table, 3)), str(Name.parse(output_table, 3))
    if source_name == target_name:
        raise InvalidParameter(f"Scoring '{source_name}' into itself: pick another output table.")
    # Grants first, cheapest first: nothing is read or loaded for a caller who may not score.
    resolved = registry.resolve(model_uri, "models.score_table")
    source = tables.get(source_name)
    target: DeltaTable | None = None
    done: int | None = None
    if tables.exists(target_name):
        tables.check_access(target_name, Privilege.MODIFY, "models.score_table")
        target = DeltaLocation(tables.get(target_name).location, storage_options).open()
        done = streaming.read_checkpoint(target, source_name)
    run = ScoringRun(
        source_name, target_name, mode, resolved.name, resolved.version, source.version, principal
    )
    if incremental and done is not None and done > source.version:
        raise ChangesUnavailable(
            f"'{target_name}' holds predictions of '{source_name}' up to version {done}, but the table "
            f"is at version {source.version}: it was dropped and recreated. Rescore it in full once "
            "(incremental=False, mode='overwrite')."
        )
    if incremental and done == source.version:
        return run.result(0, None, None, started, "local")  # nothing arrived since the last run

    lineage.used(NodeRef("model", resolved.name, resolved.version))
    registry._uri_for_mlflow()
    model = load(resolved)
    key_columns = _keys(model, keys, source.schema, source_name)
    if mode == "merge" and not key_columns:
        raise InvalidParameter(f"Merging predictions into '{target_name}' needs key columns: pass keys=.")
    starting_version: int | None = None
    rows: pads.Dataset | pa.Table
    if incremental and done is not None:
        starting_version = done + 1
        streaming.require_change_feed(DeltaLocation(source.location, storage_options).open(), source_name)
        rows, _ = streaming.changed_rows(tables, source_name, starting_version, source.version, key_columns)
        total = rows.num_rows
    else:
        rows = tables.dataset(Name.parse(source_name, 3), source.version)
        total = rows.count_rows()
    columns = _read_columns(model, key_columns, rows.schema.names)

    # "auto" uses Ray when this process already drives a cluster, for what Ray can score.
    use_ray = engine == "ray" or (engine == "auto" and model.spec is None and _ray_connected())
    predicted: Iterator[pa.Table]
    if use_ray:
        from lakestack.models import scoring_ray

        predicted = scoring_ray.predict(model, rows, columns, key_columns, batch_size)
    else:
        batches = (
            rows.to_batches(max_chunksize=batch_size)
            if isinstance(rows, pa.Table)
            else rows.to_batches(columns=columns, batch_size=batch_size)
        )
        predicted = (predict_batch(features, model, batch, key_columns) for batch in batches)
    stamped = (run.stamp(part) for part in predicted)
    rows_scored, version = run.write(
        tables, lineage, storage_options, target, _counted(stamped, progress, total)
    )
    return run.result(rows_scored, version, starting_version, started, "ray" if use_ray else "local")


def predict_batch(
    features: FeatureStore | None, model: LoadedModel, batch: pa.RecordBatch | pa.Table, keys: list[str]
) -> pa.Table:
    """Key columns + `prediction` for one batch (features looked up first when the model has a spec)."""
    rows = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    if model.spec is not None:
        assert features is not None, "feature lookups need the feature store"
        scored = feature_models.score_batch(features, model.pyfunc, model.spec, rows)
        return scored.select([*keys, "prediction"])
    wanted = [c for c in (model.inputs or rows.column_names) if model.inputs or c not in keys]
    missing = [c for c in wanted if c not in rows.column_names]
    if missing:
        raise SchemaMismatch(
            f"The input lacks column(s) {', '.join(missing)} that model '{model.name}' version "
            f"{model.version} takes."
        )
    frame = rows.select(wanted).to_pandas()
    prediction = prediction_array(model.pyfunc.predict(frame))
    return rows.select(keys).append_column("prediction", prediction)


def prediction_array(predicted: Any) -> pa.Array:
    """What a pyfunc returned, as one Arrow column: scalars, a struct per row for a DataFrame of
    several outputs, or a fixed-size list per row for a 2-D array (e.g. class probabilities)."""
    import numpy as np
    import pandas as pd

    if isinstance(predicted, pd.DataFrame):
        if predicted.shape[1] == 1:
            return pa.array(predicted.iloc[:, 0].to_numpy())
        return pa.Table.from_pandas(predicted, preserve_index=False).to_struct_array().combine_chunks()
    if isinstance(predicted, pd.Series):
        return pa.array(predicted.to_numpy())
    values = np.asarray(predicted)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
    return pa.array(values)


def _keys(model: LoadedModel, keys: list[str] | None, schema: pa.Schema, source: str) -> list[str]:
    """The columns that identify an input row in the output."""
    names = schema.names
    if keys is not None:
        found = list(dict.fromkeys(keys))
        unknown = [k for k in found if k not in names]
        if unknown:
            raise InvalidParameter(
                f"Key column(s) {', '.join(unknown)} are not columns of '{source}': {names}."
            )
        return found
    if model.spec is not None:
        found = []
        for lookup in model.spec["lookups"]:
            lookup_keys = lookup["lookup_key"]
            found += [lookup_keys] if isinstance(lookup_keys, str) else list(lookup_keys)
            if lookup["timestamp_lookup_key"] in names:
                found.append(lookup["timestamp_lookup_key"])
        return [k for k in dict.fromkeys(found) if k in names]
    if model.inputs is not None:
        found = [c for c in names if c not in model.inputs and c not in META_COLUMNS]
        if found:
            return found
    raise InvalidParameter(
        f"Cannot tell which columns of '{source}' identify a row for model '{model.name}' (it has no "
        "feature spec, and its signature takes every column): pass keys=[...]."
    )


def _read_columns(model: LoadedModel, keys: list[str], names: list[str]) -> list[str] | None:
    # Only what the model and the output need: a wide input costs no more than its features.
    if model.spec is not None or model.inputs is None:
        return None
    return [c for c in names if c in keys or c in model.inputs]


def _counted(parts: Iterator[pa.Table], progress: Progress | None, total: int | None) -> Iterator[pa.Table]:
    done = 0
    for part in parts:
        done += part.num_rows
        if progress is not None:
            progress(done, total)
        yield part


def _ray_connected() -> bool:
    """Whether this process already drives a Ray cluster (a job task on Ray compute does)."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())
