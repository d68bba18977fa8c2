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
from lakestack.errors import InvalidParameter, NotFound, PrivilegeMissing
from lakestack.models.validation.checks import (
    CheckOutcome,
    Comparison,
    MetadataRequirements,
    SliceThreshold,
    Threshold,
)

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
            model,
            "sklearn",
            registered_model_name=name,
            input_example=example,
            pip_requirements=["scikit-learn"],
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

    def pending_while_running(evaluation: object) -> bool:
        return ws.models.resolve(f"models:/{name}/{version}").tags["model_validation_status"] == "PENDING"

    result = ws.models.validate(
        f"models:/{name}/{version}",
        "dev.churn.holdout",
        "y",
        "classification",
        thresholds=["roc_auc>=0.7", "accuracy>=0.6"],
        comparisons=["roc_auc=0.01"],
        custom_checks=[no_script, pending_while_running],
    )
    assert result.status == "PASSED" and result.passed and result.alias_set == "challenger"
    comparison = next(c for c in result.checks if c.kind == "comparison")
    assert comparison.skipped and comparison.passed and "No 'champion' version" in comparison.detail
    assert result.metrics["roc_auc"] > 0.7 and result.champion_version is None
    assert result.data == "dev.churn.holdout" and result.data_version == 0 and result.rows == ROWS
    assert ws.models.get(name).aliases == {"challenger": version}
    ws.models.promote(name)  # the deployment step accepts what validation passed
    assert ws.models.get(name).aliases["champion"] == version
    info = ws.models.resolve(f"models:/{name}/{version}")
    assert info.tags["model_validation_status"] == "PASSED"
    assert info.tags["model_validation_run_id"] == result.run_id
    assert info.description is not None and info.description.startswith("Validation PASSED (6/6 checks")

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
    with pytest.raises(InvalidParameter, match="only a version that passed validation"):
        ws.models.promote(name, worse)

    # A dry run of a passing version reports PASSED and still moves nothing.
    again = _register(ws, name)
    dry = ws.models.validate(
        f"models:/{name}/{again}", "dev.churn.holdout", "y", "classification",
        comparisons=["roc_auc=0"], mode="dry_run",
    )  # fmt: skip
    assert dry.status == "PASSED" and dry.alias_set is None and any("Dry run" in n for n in dry.notes)
    assert ws.models.get(name).aliases == {"champion": good}
    disabled = ws.models.validate(
        f"models:/{name}/{again}", "dev.churn.holdout", "y", "classification", mode="disabled"
    )
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
            "accuracy>=0.5 where plan = 'gold'",  # no such column: that check fails, the rest still run
        ],
        custom_checks=[enough_rows, broken],
        mode="dry_run",
    )
    by_name = {c.name: c for c in result.checks}
    assert by_name["slice:accuracy[region = 'north']"].passed
    assert not by_name["slice:accuracy[region = 'south']"].passed
    assert by_name["slice:recall[x1 > 0 AND region = 'north']"].passed
    assert (
        "names column 'plan', which the data does not have" in by_name["slice:accuracy[plan = 'gold']"].detail
    )
    assert by_name["enough_rows"].passed and by_name["enough_rows"].value == ROWS
    assert not by_name["broken"].passed and "no such column" in by_name["broken"].detail
    assert result.status == "FAILED" and ws.models.get(name).aliases == {}
    assert result.slice_metrics["region = 'south'"]["rows"] == ROWS / 3


def day(d: int) -> datetime:
    return datetime(2026, 1, d)


def test_a_feature_store_model_is_validated_through_its_lookups_against_the_champion(ws: Workspace) -> None:
    name = "dev.churn.fs"
    rng = np.random.default_rng(5)
    ids = list(range(60))
    ws.features.create_table(
        "dev.churn.customer",
        primary_keys="cid",
        df=pa.table({"cid": ids, "spend": rng.normal(size=60), "age": rng.normal(size=60)}),
    )
    spend = ws.features.read_table("dev.churn.customer").column("spend").to_numpy()
    labels = pa.table({"cid": ids, "y": (spend + 0.2 * rng.normal(size=60) > 0).astype(int)})
    ws.tables.create("dev.churn.fs_holdout", data=labels)
    versions = []
    for features in (["age"], ["spend", "age"]):  # the champion sees noise, the candidate the signal
        training = ws.features.create_training_set(
            labels, [FeatureLookup("dev.churn.customer", "cid", feature_names=features)], label="y",
            exclude_columns=["cid"],
        )  # fmt: skip
        frame = training.load_df(to="pandas")
        model = LogisticRegression().fit(frame[features], frame["y"])
        with ws.tracking.start_run("churn"):
            logged = ws.models.log_model(
                model,
                "sklearn",
                training_set=training,
                registered_model_name=name,
                pip_requirements=["scikit-learn"],
            )
        versions.append(logged.registered_version)
    ws.models.set_alias(name, "champion", versions[0])

    result = ws.models.validate(
        f"models:/{name}/{versions[1]}",
        "dev.churn.fs_holdout",  # keys and labels only: features come from the lookups
        "y",
        "classification",
        thresholds=["roc_auc>=0.8"],
        comparisons=["roc_auc=5%"],
    )
    assert result.status == "PASSED", result.failed_checks
    assert result.champion_version == versions[0]
    assert result.metrics["roc_auc"] > result.champion_metrics["roc_auc"] * 1.05
    spec_check = next(c for c in result.checks if c.name == "feature_spec:dev.churn.customer")
    assert spec_check.passed and "spend" in spec_check.detail
    assert ws.models.get(name).aliases == {"champion": versions[0], "challenger": versions[1]}


def test_grants_gate_validation_and_the_alias(ws: Workspace) -> None:
    name = "dev.churn.granted"
    version = _register(ws, name)
    uri = f"models:/{name}/{version}"
    for who in ("bob", "carol"):
        ws.principals.create(who)
        ws.grants.grant("USE_CATALOG", "catalog", "dev", who)
        ws.grants.grant("USE_SCHEMA", "schema", "dev.churn", who)
    ws.grants.grant("EXECUTE", "model", name, "bob")
    bob, carol = ws.as_principal("bob"), ws.as_principal("carol")
    frame = HOLDOUT.to_pandas()

    with pytest.raises(PrivilegeMissing, match=r"EXECUTE on model 'dev\.churn\.granted'"):
        carol.models.validate(uri, frame, "y", "classification")
    with pytest.raises(PrivilegeMissing, match=r"MANAGE on model 'dev\.churn\.granted'"):
        bob.models.validate(uri, frame, "y", "classification", thresholds=["roc_auc>=0.5"])
    with pytest.raises(PrivilegeMissing, match=r"SELECT on table 'dev\.churn\.holdout'"):
        bob.models.validate(uri, "dev.churn.holdout", "y", "classification", mode="dry_run")
    assert "model_validation_status" not in ws.models.resolve(uri).tags  # nothing was recorded

    # A dry run needs no MANAGE: bob gets the verdict and the report, the version is untouched.
    dry = bob.models.validate(uri, frame, "y", "classification", thresholds=["roc_auc>=0.5"], mode="dry_run")
    assert dry.status == "PASSED" and dry.report_html_uri and any("needs MANAGE" in n for n in dry.notes)
    assert "model_validation_status" not in ws.models.resolve(uri).tags
    assert ws.models.get(name).aliases == {}


VALIDATE_JOB = """
name: train-and-validate
tasks:
  - task_key: train
    python_task: {function: "steps:train"}
  - task_key: validate
    depends_on: [{task_key: train}]
    python_task:
      function: "lakestack.jobs.library.validate:validate_model"
      parameters:
        model_uri: "{{tasks.train.values.model_uri}}"
        data: dev.churn.holdout
        label: y
        problem_type: classification
        thresholds: '["roc_auc>=0.7"]'
        min_improvement: "roc_auc=0.01"
        baseline: '{"roc_auc": 0.6}'
        mode: enabled
  - task_key: gate
    depends_on: [{task_key: validate}]
    condition_task: {op: EQUAL_TO, left: "{{tasks.validate.values.passed}}", right: "true"}
"""

STEPS = """
from sklearn.linear_model import LogisticRegression

from lakestack.jobs import context, task_values


def train():
    ws = context.workspace()
    frame = ws.tables.read("dev.churn.holdout", to="pandas")
    model = LogisticRegression().fit(frame[["x1", "x2"]], frame["y"])
    with ws.tracking.start_run("churn"):
        logged = ws.models.log_model(
            model, "sklearn", registered_model_name="dev.churn.job",
            input_example=frame[["x1", "x2"]].head(2), pip_requirements=["scikit-learn"],
        )
    task_values.set("model_uri", f"models:/dev.churn.job/{logged.registered_version}")
"""


def test_a_job_trains_validates_and_branches_on_the_verdict(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "steps.py").write_text(textwrap.dedent(STEPS))
    (tmp_path / "job.yml").write_text(textwrap.dedent(VALIDATE_JOB))
    ws.jobs.create(tmp_path / "job.yml")
    run = ws.jobs.run_now("train-and-validate")
    assert run.state == "SUCCESS", [(t.task_key, t.state, t.error) for t in run.tasks]
    assert {t.task_key: t.state for t in run.tasks} == {
        "train": "SUCCESS", "validate": "SUCCESS", "gate": "SUCCESS",
    }  # fmt: skip
    assert next(t for t in run.tasks if t.task_key == "gate").condition_outcome == "true"
    values = {t.task_key: t.task_values for t in run.tasks}
    assert values["validate"]["validation_status"] == "PASSED" and values["validate"]["passed"] is True
    assert values["validate"]["report_uri"].endswith("validation/report.html")
    assert values["validate"]["roc_auc"] > 0.7
    assert values["validate"]["model_uri"] == values["train"]["model_uri"] == "models:/dev.churn.job/1"
    assert ws.models.get("dev.churn.job").aliases == {"challenger": 1}
    # No champion yet: the minimum improvement was measured against the baseline parameter.
    checks = json.loads(_artifact(ws, values["validate"]["run_id"], "validation/report.json"))["checks"]
    comparison = next(c for c in checks if c["kind"] == "comparison")
    assert comparison["passed"] and not comparison["skipped"] and "the baseline" in comparison["detail"]


def test_a_model_that_cannot_predict_fails_and_a_wrong_table_records_nothing(ws: Workspace) -> None:
    name = "dev.churn.broken"
    version = _register(ws, name)
    uri = f"models:/{name}/{version}"
    with pytest.raises(NotFound, match=r"dev\.churn\.nope"):
        ws.models.validate(uri, "dev.churn.nope", "y", "classification")
    with pytest.raises(InvalidParameter, match="no label column 'label'"):
        ws.models.validate(uri, "dev.churn.holdout", "label", "classification")
    with ws.tracking.start_run("churn"), pytest.raises(InvalidParameter, match="call it outside"):
        ws.models.validate(uri, "dev.churn.holdout", "y", "classification")
    assert "model_validation_status" not in ws.models.resolve(uri).tags

    result = ws.models.validate(
        uri, HOLDOUT.drop_columns(["x2"]), "y", "classification", thresholds=["f1>=0.5"]
    )
    assert result.status == "FAILED" and ws.models.get(name).aliases == {}
    (predict,) = [c for c in result.checks if c.name == "predict"]
    assert not predict.passed and "needs input column(s) x2" in predict.detail
    assert ws.models.resolve(uri).tags["model_validation_status"] == "FAILED"


def test_a_regression_model_and_its_description_across_validations(ws: Workspace) -> None:
    from sklearn.linear_model import LinearRegression

    name = "dev.churn.spend"
    frame = TRAIN.to_pandas()
    with ws.tracking.start_run("spend"):
        logged = ws.models.log_model(
            LinearRegression().fit(frame[["x1"]], frame["x2"]),
            "sklearn",
            registered_model_name=name,
            input_example=frame[["x1"]].head(2),
            pip_requirements=["scikit-learn"],
        )
    uri = f"models:/{name}/{logged.registered_version}"
    needs = MetadataRequirements(description=True, tags=("owner",))
    first = ws.models.validate(uri, "dev.churn.holdout", "x2", "regression", metadata=needs, mode="dry_run")
    assert {c.name for c in first.failed_checks} == {"description", "tag:owner"}
    assert set(first.metrics) == {"mae", "mse", "rmse", "r2", "mape"}

    ws.models.set_description(name, 1, "Predicts x2 from x1.")
    ws.models.set_tag(name, 1, "owner", "ml-team")
    second = ws.models.validate(
        uri, "dev.churn.holdout", "x2", "regression", metadata=needs, thresholds=["rmse<=1.5"], mode="dry_run"
    )
    assert second.status == "PASSED" and second.metrics["rmse"] < 1.5
    lines = (ws.models.resolve(uri).description or "").splitlines()
    assert (
        lines[0] == "Predicts x2 from x1."
        and len(lines) == 2
        and lines[1].startswith("Validation PASSED (4/4")
    )
    assert ws.tracking.runs("spend")[0].info.run_id == second.run_id  # beside the training run
