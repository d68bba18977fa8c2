"""Model validation end to end: real MLflow store, real Delta tables, real grants and a real job."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from lakestack import FeatureLookup, Workspace
from lakestack.errors import PrivilegeMissing
from lakestack.models.validation.checks import CheckOutcome, Comparison, SliceThreshold, Threshold

ROWS = 240


def _data(seed: int) -> pa.Table:
    """x1 predicts y in the north; in the south y is a coin flip (a slice the model fails)."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=ROWS), rng.normal(size=ROWS)
    region = np.where(np.arange(ROWS) % 3 == 0, "south", "north")
    y = np.where(region == "north", (x1 + 0.3 * rng.normal(size=ROWS) > 0), rng.random(ROWS) > 0.5)
    return pa.table({"x1": x1, "x2": x2, "region": region, "y": y.astype(int)})


TRAIN, HOLDOUT = _data(1), _data(2)


def _register(ws: Workspace, name: str, worse: bool = False) -> int:
    """A model on x1 and x2, or a worse one on x2 alone (noise: roc_auc about 0.5)."""
    columns = ["x2"] if worse else ["x1", "x2"]
    frame = TRAIN.to_pandas()
    model = LogisticRegression().fit(frame[columns], frame["y"])
    example = frame[columns].head(3)
    with ws.tracking.start_run("churn"):
        logged = ws.models.log_model(
            model, "sklearn", registered_model_name=name, input_example=example, pip_requirements=["scikit-learn"]
        )
    assert logged.registered_version is not None
    return logged.registered_version


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path_factory.mktemp("validation") / "ws")
    workspace.schemas.create("dev.churn")
    workspace.tables.create("dev.churn.holdout", data=HOLDOUT)
    yield workspace
    workspace.close()


def _artifact(ws: Workspace, run_id: str, path: str) -> str:
    client = mlflow.MlflowClient(tracking_uri=ws.mlflow_tracking_uri)
    return Path(client.download_artifacts(run_id, path)).read_text()


def test_a_first_model_passes_on_thresholds_and_becomes_challenger(ws: Workspace) -> None:
    name = "dev.churn.first"
    version = _register(ws, name)

    def no_script(evaluation: object) -> tuple[bool, str]:
        return True, "<script>alert('x')</script>"

    result = ws.models.validate(
        f"models:/{name}/{version}",
        "dev.churn.holdout",
        "y",
        "classification",
        thresholds=["roc_auc>=0.7", "accuracy>=0.6"],
        comparisons=["roc_auc=0.01"],
        custom_checks=[no_script],
    )
    assert result.status == "PASSED" and result.passed and result.alias_set == "challenger"
    comparison = next(c for c in result.checks if c.kind == "comparison")
    assert comparison.skipped and comparison.passed and "No 'champion' version" in comparison.detail
    assert result.metrics["roc_auc"] > 0.7 and result.champion_version is None
    assert result.data == "dev.churn.holdout" and result.data_version == 0 and result.rows == ROWS
    assert ws.models.get(name).aliases == {"challenger": version}
    info = ws.models.resolve(f"models:/{name}/{version}")
    assert info.tags["model_validation_status"] == "PASSED"
    assert info.tags["model_validation_run_id"] == result.run_id
    assert info.description is not None and info.description.startswith("Validation PASSED (5/5 checks")

    report = json.loads(_artifact(ws, str(result.run_id), "validation/report.json"))
    assert report["status"] == "PASSED" and report["metrics"]["roc_auc"] == result.metrics["roc_auc"]
    page = _artifact(ws, str(result.run_id), "validation/report.html")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page and "<script>" not in page
    run = ws.tracking.get_run(str(result.run_id))
    assert run.data.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["dev.churn.holdout"]
    # Lineage: the table version and the model version went into the validation run.
    upstream = ws.lineage.upstream(f"run:{result.run_id}", depth=1)
    assert {(n.ref.kind, n.ref.name, n.ref.version) for n in upstream.nodes[1:]} >= {
        ("table", "dev.churn.holdout", 0),
        ("model", name, version),
    }


def test_a_worse_model_fails_against_the_champion_and_moves_no_alias(ws: Workspace) -> None:
    name = "dev.churn.cmp"
    good = _register(ws, name)
    ws.models.set_alias(name, "champion", good)
    worse = _register(ws, name, worse=True)
    result = ws.models.validate(
        f"models:/{name}/{worse}",
        HOLDOUT.to_pandas(),
        "y",
        "classification",
        thresholds=["accuracy>=0.4"],
        comparisons=[Comparison("roc_auc", min_absolute=0.0), "log_loss=0.001"],
    )
    assert result.status == "FAILED" and not result.passed and result.alias_set is None
    assert result.champion_version == good and result.champion_metrics["roc_auc"] > result.metrics["roc_auc"]
    failed = {c.name for c in result.failed_checks}
    assert failed == {"comparison:roc_auc", "comparison:log_loss"}
    assert "champion (version 1)" in next(c.detail for c in result.checks if c.name == "comparison:roc_auc")
    assert ws.models.get(name).aliases == {"champion": good}
    assert ws.models.resolve(f"models:/{name}/{worse}").tags["model_validation_status"] == "FAILED"

    # A dry run of a passing version reports PASSED and still moves nothing.
    again = _register(ws, name)
    dry = ws.models.validate(
        f"models:/{name}/{again}", "dev.churn.holdout", "y", "classification",
        comparisons=["roc_auc=0"], mode="dry_run",
    )  # fmt: skip
    assert dry.status == "PASSED" and dry.alias_set is None and any("Dry run" in n for n in dry.notes)
    assert ws.models.get(name).aliases == {"champion": good}
    disabled = ws.models.validate(f"models:/{name}/{again}", "dev.churn.holdout", "y", "classification", mode="disabled")
    assert disabled.status == "SKIPPED" and not disabled.passed and disabled.run_id is None
    assert ws.models.resolve(f"models:/{name}/{again}").tags["model_validation_status"] == "SKIPPED"
    assert ws.models.get(name).aliases == {"champion": good}


def test_slice_thresholds_and_custom_checks(ws: Workspace) -> None:
    name = "dev.churn.slices"
    version = _register(ws, name)

    def enough_rows(evaluation: object) -> CheckOutcome:
        frame = evaluation.frame()  # type: ignore[attr-defined]
        return CheckOutcome(len(frame) >= 100, f"{len(frame)} rows", float(len(frame)))

    def broken(evaluation: object) -> bool:
        raise RuntimeError("no such column")

    result = ws.models.validate(
        f"models:/{name}/{version}",
        "dev.churn.holdout",
        "y",
        "classification",
        slices=[
            "accuracy>=0.75 where region",
            SliceThreshold("x1 > 0 AND region = 'north'", Threshold("recall", ">=", 0.5)),
        ],
        custom_checks=[enough_rows, broken],
        mode="dry_run",
    )
    by_name = {c.name: c for c in result.checks}
    assert by_name["slice:accuracy[region = 'north']"].passed
    assert not by_name["slice:accuracy[region = 'south']"].passed
    assert by_name["slice:recall[x1 > 0 AND region = 'north']"].passed
    assert by_name["enough_rows"].passed and by_name["enough_rows"].value == ROWS
    assert not by_name["broken"].passed and "no such column" in by_name["broken"].detail
    assert result.status == "FAILED" and ws.models.get(name).aliases == {}
    assert result.slice_metrics["region = 'south'"]["rows"] == ROWS / 3
