"""Scoring a model version on evaluation rows the way it is served, plus class probabilities.

Predictions come from the model's pyfunc, with its feature spec's lookups joined first (as
`ws.models.score_batch` does), so a feature-store model is evaluated through its lookups and
the champion on exactly the same rows. Probabilities for roc_auc and log_loss come from the
underlying estimator's `predict_proba` when it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lakestack.errors import InvalidParameter
from lakestack.features.store import FeatureStore
from lakestack.models import feature_models


@dataclass(frozen=True)
class Scored:
    """The rows as the model saw them (input plus looked-up features) and what it predicted."""

    rows: pa.Table
    predictions: np.ndarray
    scores: np.ndarray | None
    classes: list[Any] | None


def model_info(uri: str) -> Any:
    """MLflow's `ModelInfo` of a registered version (signature, example, metadata)."""
    import mlflow

    return mlflow.models.get_model_info(uri)


def feature_spec(info: Any) -> dict[str, Any] | None:
    """The feature spec a model was logged with through a training set, or None."""
    spec: dict[str, Any] | None = (
        (info.metadata or {}).get(feature_models.METADATA_KEY, {}).get("feature_spec")
    )
    return spec


def signature_inputs(info: Any) -> list[str]:
    """The named input columns of the model's signature (empty without one)."""
    if info.signature is None or info.signature.inputs is None:
        return []
    return [name for name in info.signature.inputs.input_names() if isinstance(name, str)]


def score(
    features: FeatureStore, uri: str, info: Any, rows: pa.Table, label: str, classification: bool
) -> Scored:
    """Predict on `rows` (the label column is withheld from the model)."""
    import mlflow

    model = mlflow.pyfunc.load_model(uri)
    spec = feature_spec(info)
    inputs = rows.drop_columns([label])
    if spec is None:
        wanted = signature_inputs(info)
        missing = [c for c in wanted if c not in inputs.column_names]
        if missing:
            raise InvalidParameter(
                f"Model {uri} needs input column(s) {', '.join(missing)}, which the evaluation data "
                f"does not have (it has: {', '.join(inputs.column_names)})."
            )
        if wanted:  # the model sees its inputs only; slice columns stay in the evaluation rows
            inputs = inputs.select(wanted)
    try:
        scored = feature_models.score_batch(features, model, spec, inputs)
    except Exception as exc:
        if isinstance(exc, InvalidParameter):
            raise
        raise InvalidParameter(f"Model {uri} failed to predict on the evaluation data: {exc}") from exc
    predictions = np.asarray(scored.column("prediction").to_pylist())
    joined = scored.drop_columns(["prediction"])
    for name in rows.column_names:  # keep the label and the columns the model did not take
        if name not in joined.column_names:
            joined = joined.append_column(name, rows.column(name))
    scores, classes = _probabilities(model, joined, spec, info) if classification else (None, None)
    return Scored(joined, predictions, scores, classes)


def _probabilities(
    model: Any, rows: pa.Table, spec: Any, info: Any
) -> tuple[np.ndarray | None, list[Any] | None]:
    """Class probabilities from the estimator inside the pyfunc, when it exposes them."""
    estimator, columns = _estimator(model, spec, info)
    if estimator is None or not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        return None, None
    if not columns:
        columns = [str(c) for c in getattr(estimator, "feature_names_in_", [])]
    if not columns or any(c not in rows.column_names for c in columns):
        return None, None
    frame = rows.select(columns).to_pandas()
    return np.asarray(estimator.predict_proba(frame), dtype=float), list(estimator.classes_)


def _estimator(model: Any, spec: Any, info: Any) -> tuple[Any, list[str]]:
    """The flavor's own model (e.g. the scikit-learn estimator) and the columns it takes."""
    if spec is not None:
        # lakestack's FeatureSpecModel keeps the flavor model as a loaded pyfunc in `_inner`.
        try:
            wrapper = model.unwrap_python_model()
            return wrapper._inner.get_raw_model(), list(wrapper.feature_columns)
        except Exception:  # not our wrapper after all: no probabilities, predictions still count
            return None, []
    try:
        return model.get_raw_model(), signature_inputs(info)
    except Exception:  # a flavor without a raw model (custom pyfunc): no probabilities
        return None, []
