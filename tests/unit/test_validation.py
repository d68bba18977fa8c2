"""Validation building blocks: metrics against scikit-learn, check parsing, slice-expression
safety, comparisons in both directions and the escaped HTML report."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from sklearn import metrics as sk

from lakestack.errors import InvalidParameter
from lakestack.models.validation import metrics, report, slices
from lakestack.models.validation.checks import CheckResult, Comparison, SliceThreshold, Threshold
from lakestack.models.validation.result import ModelScores, ValidationResult
from lakestack.models.validation.runner import _improves
from lakestack.models.validation.service import ValidationSpec

RNG = np.random.default_rng(0)


def test_classification_metrics_match_scikit_learn() -> None:
    truth = RNG.integers(0, 2, 200)
    proba = np.clip(truth * 0.6 + RNG.random(200) * 0.5, 0, 1)
    predicted = (proba > 0.5).astype(int)
    found = metrics.compute("classification", truth, predicted, np.column_stack([1 - proba, proba]), [0, 1])
    assert found == pytest.approx(
        {
            "accuracy": sk.accuracy_score(truth, predicted),
            "precision": sk.precision_score(truth, predicted),
            "recall": sk.recall_score(truth, predicted),
            "f1": sk.f1_score(truth, predicted),
            "roc_auc": sk.roc_auc_score(truth, proba),
            "log_loss": sk.log_loss(truth, proba),
        }
    )
    # Without scores the probability metrics are left out, not invented.
    assert set(metrics.compute("classification", truth, predicted)) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
    }
    # One class present: roc_auc is undefined and absent.
    assert "roc_auc" not in metrics.compute("classification", [1, 1], [1, 0], [0.9, 0.2], [0, 1])


def test_multiclass_and_regression_metrics_match_scikit_learn() -> None:
    truth = RNG.integers(0, 3, 150)
    proba = RNG.dirichlet([1, 1, 1], 150)
    predicted = proba.argmax(axis=1)
    found = metrics.compute("classification", truth, predicted, proba, [0, 1, 2])
    assert found["f1"] == pytest.approx(sk.f1_score(truth, predicted, average="weighted"))
    assert found["roc_auc"] == pytest.approx(sk.roc_auc_score(truth, proba, multi_class="ovr"))
    y, yhat = RNG.normal(5, 1, 100), RNG.normal(5, 1, 100)
    regression = metrics.compute("regression", y, yhat)
    assert regression == pytest.approx(
        {
            "mae": sk.mean_absolute_error(y, yhat),
            "mse": sk.mean_squared_error(y, yhat),
            "rmse": math.sqrt(sk.mean_squared_error(y, yhat)),
            "r2": sk.r2_score(y, yhat),
            "mape": sk.mean_absolute_percentage_error(y, yhat),
        }
    )
    with pytest.raises(InvalidParameter, match="Unknown regression metric 'roc_auc'"):
        metrics.check_metric("roc_auc", "regression")


def test_checks_parse_from_text() -> None:
    assert Threshold.parse("roc_auc>=0.7") == Threshold("roc_auc", ">=", 0.7)
    assert Threshold.parse(" mae < 3e2 ") == Threshold("mae", "<", 300.0)
    assert Comparison.parse("roc_auc=0.01") == Comparison("roc_auc", min_absolute=0.01)
    assert Comparison.parse("rmse=5%", baseline=2.0) == Comparison("rmse", min_relative=0.05, baseline=2.0)
    parsed = SliceThreshold.parse("accuracy>=0.6 WHERE region = 'north'")
    assert parsed == SliceThreshold("region = 'north'", Threshold("accuracy", ">=", 0.6))
    for bad, match in [
        ("auc>>1", "Invalid threshold"),
        ("auc>=1e999", "not a finite number"),
        ("roc_auc>0.1", "Invalid minimum improvement"),
    ]:
        with pytest.raises(InvalidParameter, match=match):
            (Comparison.parse if "improvement" in match else Threshold.parse)(bad)
    with pytest.raises(InvalidParameter, match="where EXPRESSION"):
        SliceThreshold.parse("accuracy>=0.6")
    spec = ValidationSpec.build("y", "classification", thresholds="roc_auc>=0.7", slices=["f1>0.5 where a"])
    assert spec.thresholds == [Threshold("roc_auc", ">=", 0.7)] and spec.metric_names() == ["roc_auc", "f1"]
    with pytest.raises(InvalidParameter, match="Unknown classification metric 'rmse'"):
        ValidationSpec.build("y", "classification", comparisons=["rmse=0.1"])
    with pytest.raises(InvalidParameter, match="Unknown problem_type 'ranking'"):
        ValidationSpec.build("y", "ranking")


def test_comparisons_respect_the_direction_of_the_metric() -> None:
    assert _improves(Comparison("roc_auc", min_absolute=0.01), 0.82, 0.80)[0]
    assert not _improves(Comparison("roc_auc", min_absolute=0.03), 0.82, 0.80)[0]
    assert _improves(Comparison("rmse", min_relative=0.1), 8.9, 10.0)[0]  # lower is better: -11%
    assert not _improves(Comparison("rmse", min_relative=0.1), 9.5, 10.0)[0]
    assert not _improves(Comparison("rmse"), 10.5, 10.0)[0]  # worse fails even with no minimum
    assert _improves(Comparison("custom_score", greater_is_better=False), 1.0, 2.0)[0]


DATA = pa.table({"region": ["n", "s", "n", None], "x": [1, 20, 30, 4], "plan": ["a", "b", "b", "a"]})


def test_slice_expressions_select_rows() -> None:
    (north,) = slices.evaluate("region = 'n' AND x > 10", DATA)
    assert north.mask.tolist() == [False, False, True, False]
    per_value = slices.evaluate("plan", DATA)
    assert [(s.label, s.mask.tolist()) for s in per_value] == [
        ("plan = 'a'", [True, False, False, True]),
        ("plan = 'b'", [False, True, True, False]),
    ]
    (liked,) = slices.evaluate("lower(plan) LIKE 'b%' OR x BETWEEN 1 AND 2 OR region IS NULL", DATA)
    assert liked.mask.tolist() == [True, True, True, True]
    with pytest.raises(InvalidParameter, match="has 101 distinct values"):
        slices.evaluate("n", pa.table({"n": list(range(101))}))


@pytest.mark.parametrize(
    ("expression", "match"),
    [
        ("x > 1; DROP TABLE t", "comments"),
        ("x > 1 -- and the rest", "comments"),
        ("x > (SELECT max(x) FROM slice_data)", "subquery is not allowed"),
        ("x IN (SELECT 1)", "subquery is not allowed"),
        ("read_csv('/etc/passwd') IS NOT NULL", "function 'read_csv' is not allowed"),
        ("getenv('HOME') = 'x'", "function 'getenv' is not allowed"),
        ("x > 1 FROM slice_data", "not a query or statement"),
        ("secret = 1", "names column 'secret'"),
        ("slice_data.x > 1", "names column 'slice_data.x'"),
        ("", "empty"),
    ],
)
def test_slice_expressions_refuse_anything_but_an_expression(expression: str, match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        slices.validate(expression, DATA.column_names)


def test_the_html_report_escapes_every_value() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    scores = ModelScores("dev.s.m", 1, np.array([1]), None, None, {"accuracy": 1.0})
    assert scores.uri == "models:/dev.s.m/1"
    result = ValidationResult(
        "dev.s.m",
        1,
        "FAILED",
        "dry_run",
        [CheckResult(hostile, "custom", False, detail=hostile)],
        {"accuracy": 1.0, "r2": float("nan")},
        slice_metrics={f"region = '{hostile}'": {"rows": 1.0}},
        notes=[hostile],
    )
    page = report.to_html(result)
    assert "<img" not in page and page.count("&lt;img src=x onerror=alert(1)&gt;") == 4
    assert "<script" not in page and "http" not in page  # nothing to fetch, nothing to run
    assert '"r2": null' in report.to_json(result)  # NaN is not JSON


def test_the_job_task_reads_its_parameters_and_publishes_json_task_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from lakestack.jobs import task_values
    from lakestack.jobs.library.validate import _flag, _texts, publish

    monkeypatch.delenv(task_values.TASK_DIR_ENV, raising=False)
    monkeypatch.setattr(task_values, "_local", {})  # outside a job values stay in memory: keep them ours

    assert _texts('["roc_auc>=0.7", "f1>=0.5"]', "thresholds") == ["roc_auc>=0.7", "f1>=0.5"]
    assert _texts("roc_auc>=0.7; f1>=0.5", "thresholds") == ["roc_auc>=0.7", "f1>=0.5"]
    assert _texts(["a"], "x") == ["a"] and _texts(None, "x") == [] and _texts("", "x") == []
    with pytest.raises(InvalidParameter, match="thresholds"):
        _texts("[1, 2", "thresholds")
    assert _flag("true", "f") and not _flag("false", "f") and _flag(True, "f")
    with pytest.raises(InvalidParameter, match="true or false"):
        _flag("maybe", "f")
    result = ValidationResult(
        "dev.s.m", 3, "PASSED", "enabled", [], {"roc_auc": 0.9, "r2": float("nan"), "mape": float("inf")}
    )
    values = publish(result)
    assert values["passed"] is True and values["validation_status"] == "PASSED" and values["roc_auc"] == 0.9
    assert "r2" not in values and "mape" not in values  # task values are JSON
    assert task_values.get("validate", "model_uri") == "models:/dev.s.m/3"
