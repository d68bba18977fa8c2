"""Evaluation metrics for validation, computed with scikit-learn.

Classification: accuracy, precision, recall, f1 (binary on the positive class, weighted over
classes otherwise), roc_auc and log_loss (both need scores: class probabilities from
`predict_proba`). Regression: mae, mse, rmse, r2 and mape. A metric that is undefined on the
data (roc_auc with one class present, any metric on no rows) is left out, not guessed.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from lakestack.errors import InvalidParameter

ProblemType = Literal["classification", "regression"]
PROBLEM_TYPES: tuple[ProblemType, ...] = ("classification", "regression")

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "mse", "rmse", "r2", "mape")
# Lower is better for these; every other metric is better when greater.
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "mse", "rmse", "mape"})


def problem_type(value: str) -> ProblemType:
    """Check a problem type name (`classification` or `regression`)."""
    if value not in PROBLEM_TYPES:
        raise InvalidParameter(f"Unknown problem_type {value!r}: use 'classification' or 'regression'.")
    return value


def known_metrics(kind: ProblemType) -> tuple[str, ...]:
    """The metric names computed for a problem type."""
    return CLASSIFICATION_METRICS if kind == "classification" else REGRESSION_METRICS


def check_metric(name: str, kind: ProblemType) -> str:
    """`name` if it is computed for `kind`; otherwise an error listing the ones that are."""
    allowed = known_metrics(kind)
    if name not in allowed:
        raise InvalidParameter(f"Unknown {kind} metric {name!r}: use one of {', '.join(allowed)}.")
    return name


def greater_is_better(metric: str) -> bool:
    """Whether a higher value of `metric` is an improvement (False for losses and errors)."""
    return metric not in LOWER_IS_BETTER


def compute(
    kind: ProblemType, y_true: Any, y_pred: Any, scores: Any = None, classes: Any = None
) -> dict[str, float]:
    """The metrics of one model on one set of rows.

    `scores` are class probabilities: one column per class in `classes` order (or, for two
    classes, the positive class's probability as one vector). Without them roc_auc and
    log_loss are left out.
    """
    truth = np.asarray(y_true)
    predicted = np.asarray(y_pred)
    if len(truth) == 0:
        return {}
    if kind == "regression":
        return _regression(truth.astype(float), predicted.astype(float))
    return _classification(truth, predicted, scores, classes)


def _regression(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn import metrics

    mse = float(metrics.mean_squared_error(truth, predicted))
    found = {
        "mae": float(metrics.mean_absolute_error(truth, predicted)),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mape": float(metrics.mean_absolute_percentage_error(truth, predicted)),
    }
    if len(truth) >= 2:  # r2 is undefined on one row
        found["r2"] = float(metrics.r2_score(truth, predicted))
    return found


def _classification(truth: np.ndarray, predicted: np.ndarray, scores: Any, classes: Any) -> dict[str, float]:
    from sklearn import metrics

    labels = np.unique(np.concatenate([truth, predicted]))
    binary = len(labels) <= 2 and set(labels.tolist()) <= {0, 1}  # bools compare equal to 0 and 1
    average = "binary" if binary else "weighted"
    found = {
        "accuracy": float(metrics.accuracy_score(truth, predicted)),
        "precision": float(metrics.precision_score(truth, predicted, average=average, zero_division=0)),
        "recall": float(metrics.recall_score(truth, predicted, average=average, zero_division=0)),
        "f1": float(metrics.f1_score(truth, predicted, average=average, zero_division=0)),
    }
    if scores is None:
        return found
    probabilities = np.asarray(scores, dtype=float)
    known = list(classes) if classes is not None else [0, 1]
    if probabilities.ndim == 2 and probabilities.shape[1] == 2:
        probabilities = probabilities[:, 1]  # the positive class, as roc_auc wants for two classes
    if len(np.unique(truth)) >= 2:
        if probabilities.ndim == 1:
            found["roc_auc"] = float(metrics.roc_auc_score(truth == known[-1], probabilities))
        elif set(np.unique(truth).tolist()) == set(known):
            found["roc_auc"] = float(
                metrics.roc_auc_score(truth, probabilities, multi_class="ovr", labels=known)
            )
    if probabilities.ndim == 1:
        probabilities = np.column_stack([1 - probabilities, probabilities])
    found["log_loss"] = float(metrics.log_loss(truth, probabilities, labels=known))
    return found
