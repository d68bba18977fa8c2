"""Logging models with their feature spec, and batch scoring that looks the features up.

`log_model` packages the flavor model inside a pyfunc wrapper that knows its feature columns,
and stores the training set's feature spec in the model's metadata. `score_batch` reads that
spec back, joins the features onto the caller's keys (point in time when the input carries the
timestamp column the training set used; the newest values otherwise), lets input columns that
name a feature override the stored values, and predicts.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from lakestack.errors import InvalidParameter
from lakestack.features.store import FeatureStore
from lakestack.features.training import FeatureLookup, TrainingSet
from lakestack.tables.arrow import to_arrow

METADATA_KEY = "lakestack"


@dataclass(frozen=True)
class LoggedModel:
    model_uri: str
    run_id: str
    registered_version: int | None


def log_model(
    model: Any,
    flavor: str,
    training_set: TrainingSet | None,
    name: str,
    input_example: Any,
    pip_requirements: list[str] | None,
) -> tuple[str, str]:
    """Log `model` in the active run; returns (model_uri, run_id)."""
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise InvalidParameter(
            "log_model needs an active run: wrap it in `with ws.tracking.start_run(project):`."
        )
    module = getattr(mlflow, flavor, None)
    if module is None or not hasattr(module, "save_model"):
        raise InvalidParameter(
            f"Unknown MLflow flavor {flavor!r}: use e.g. sklearn, lightgbm, xgboost or pyfunc."
        )
    if training_set is None:
        info = module.log_model(
            model, name=name, input_example=input_example, pip_requirements=pip_requirements
        )
        return str(info.model_uri), run.info.run_id

    from lakestack.models.packaged import FeatureSpecModel

    frame = training_set.load_df(to="pandas")
    features = frame.drop(columns=training_set.label)
    example = features.head(5) if input_example is None else input_example
    signature = mlflow.models.infer_signature(features, model.predict(features))
    with tempfile.TemporaryDirectory() as folder:
        inner = Path(folder) / "inner"
        module.save_model(model, path=str(inner), pip_requirements=pip_requirements)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=FeatureSpecModel(list(features.columns)),
            artifacts={"inner": str(inner)},
            signature=signature,
            input_example=example,
            pip_requirements=pip_requirements,
            metadata={METADATA_KEY: {"feature_spec": training_set.feature_spec(), "flavor": flavor}},
        )
    return str(info.model_uri), run.info.run_id


def score_batch(features: FeatureStore, model: Any, spec: dict[str, Any] | None, df: Any) -> pa.Table:
    """Predict on `df` with `model` (a loaded pyfunc), looking up the spec's features first."""
    rows = to_arrow(df)
    if spec is not None:
        lookups = [
            lookup for item in spec["lookups"] if (lookup := _lookup(item, rows.column_names)) is not None
        ]
        rows = features.create_training_set(rows, lookups, label=None).join()
    predictions = model.predict(rows.to_pandas())
    return rows.append_column("prediction", pa.array(list(predictions)))


def _lookup(item: dict[str, Any], columns: list[str]) -> FeatureLookup | None:
    """Rebuild a lookup for scoring: latest versions, and skipping features the input provides."""
    renames = dict(zip(item["features"], item["outputs"], strict=True))
    wanted = [f for f in item["features"] if renames[f] not in columns]
    if not wanted:
        return None
    ts = item["timestamp_lookup_key"] if item["timestamp_lookup_key"] in columns else None
    lookback = item["lookback_seconds"]
    return FeatureLookup(
        table_name=item["table_name"],
        lookup_key=item["lookup_key"],
        timestamp_lookup_key=ts,
        feature_names=wanted,
        rename_outputs={f: renames[f] for f in wanted},
        default_values={f: v for f, v in item["default_values"].items() if f in wanted},
        lookback_window=timedelta(seconds=lookback) if lookback is not None and ts else None,
    )
