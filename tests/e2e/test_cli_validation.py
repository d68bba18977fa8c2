"""`lakestack models validate`: the verdict as a table or JSON, and exit code 9 on failure."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
from sklearn.linear_model import LogisticRegression
from tests.e2e.test_cli import lakestack, ok

from lakestack import Workspace


def test_validate_prints_the_verdict_and_exits_9_when_the_model_fails(tmp_path: Path) -> None:
    path = tmp_path / "ws"
    ws = Workspace.init(path)
    ws.schemas.create("dev.churn")
    x = np.linspace(-2, 2, 40)
    data = pa.table({"x": x, "y": (x > 0).astype(int), "region": ["a", "b"] * 20})
    ws.tables.create("dev.churn.holdout", data=data)
    with ws.tracking.start_run("churn"):
        frame = data.to_pandas()
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit(frame[["x"]], frame["y"]),
            name="model",
            input_example=frame[["x"]].head(2),
            pip_requirements=["scikit-learn"],
        )
    ws.models.register(info.model_uri, "dev.churn.model")
    ws.close()

    common = ["--data", "dev.churn.holdout", "--label", "y", "--problem-type", "classification"]
    failed = lakestack(
        "models", "validate", "models:/dev.churn.model/1", *common,
        "--threshold", "roc_auc>=0.9", "--slice", "accuracy>=1.01 where region", "--json", ws=path,
    )  # fmt: skip
    assert failed.returncode == 9, failed.stderr
    report = json.loads(failed.stdout)
    assert report["status"] == "FAILED" and report["alias_set"] is None
    assert {c["name"] for c in report["checks"] if not c["passed"]} == {
        "slice:accuracy[region = 'a']",
        "slice:accuracy[region = 'b']",
    }
    shown = ok(
        "models", "validate", "models:/dev.churn.model/1", *common, "--threshold", "roc_auc>=0.9",
        "--min-improvement", "roc_auc=0.01", "--baseline", "roc_auc=0.5",
        "--slice", "accuracy>=0.5 where region", ws=path,
    )  # fmt: skip
    assert (
        "PASSED" in shown
        and "comparison:roc_auc" in shown
        and "slice:accuracy[region = 'b']" in shown  # not eaten as rich markup
        and "dev.churn.model@challenger -> version 1" in shown
    )
    assert json.loads(ok("models", "show", "dev.churn.model", "--json", ws=path))["aliases"] == {
        "challenger": 1
    }
