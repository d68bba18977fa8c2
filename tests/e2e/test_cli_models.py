"""`lakestack models|experiments|runs|lineage` over a workspace holding a real run and model."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pyarrow as pa
from sklearn.linear_model import LogisticRegression
from tests.e2e.test_cli import EXIT, lakestack, ok

from lakestack import Workspace


def test_models_experiments_and_runs_commands(tmp_path: Path) -> None:
    path = tmp_path / "ws"
    ws = Workspace.init(path)
    ws.schemas.create("dev.churn")
    ws.tables.create("dev.churn.events", data=pa.table({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]}))
    with ws.tracking.start_run("churn", run_name="baseline", params={"C": 1.0}) as run:
        data = ws.tables.read("dev.churn.events")
        X, y = np.array(data.column("x").to_pylist()).reshape(-1, 1), data.column("y").to_pylist()
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit(X, y), name="model", pip_requirements=["scikit-learn"]
        )
        mlflow.log_metric("accuracy", 1.0)
    ws.models.register(info.model_uri, "dev.churn.model")
    ws.close()

    assert "dev.churn.model" in ok("models", "ls", "dev.churn", ws=path)
    ok("models", "alias", "set", "dev.churn.model", "champion", "1", ws=path)
    ok("models", "tag", "dev.churn.model", "1", "model_validation_status", "PASSED", ws=path)
    shown = json.loads(ok("models", "show", "dev.churn.model", "--json", ws=path))
    assert shown["aliases"] == {"champion": 1} and shown["latest_version"] == 1
    versions = json.loads(ok("models", "versions", "dev.churn.model", "--json", ws=path))
    assert versions[0]["tags"] == {"model_validation_status": "PASSED"} and versions[0]["aliases"] == [
        "champion"
    ]
    chain = ok("lineage", "dev.churn.model@champion", ws=path)
    assert "model dev.churn.model/1" in chain and "table dev.churn.events v0" in chain
    assert f"run {run.info.run_id[:12]}" in chain
    graph = json.loads(ok("lineage", "dev.churn.events", "--downstream", "--json", ws=path))
    assert {(n["kind"], n.get("version")) for n in graph["nodes"]} >= {("run", None), ("model", 1)}
    gone = lakestack("lineage", "run:nope", ws=path)
    assert gone.returncode == EXIT["not_found"] and "No lineage recorded" in gone.stderr

    ok("models", "alias", "rm", "dev.churn.model", "champion", ws=path)
    assert json.loads(ok("models", "show", "dev.churn.model", "--json", ws=path))["aliases"] == {}

    assert [e["name"] for e in json.loads(ok("experiments", "ls", "--json", ws=path))] == ["/lakestack/churn"]
    listed = json.loads(ok("runs", "ls", "churn", "--json", ws=path))
    assert [r["run_id"] for r in listed] == [run.info.run_id] and listed[0]["metrics"] == {"accuracy": 1.0}
    detail = json.loads(ok("runs", "show", run.info.run_id, "--json", ws=path))
    assert detail["params"] == {"C": "1.0"}
    assert [(i["table"], i["delta_table_version"]) for i in detail["inputs"]] == [("dev.churn.events", 0)]
    assert "dev.churn.events" in ok("runs", "show", run.info.run_id, ws=path)

    missing = lakestack("runs", "show", "nope", ws=path)
    assert missing.returncode == EXIT["not_found"] and "lakestack runs ls" in missing.stderr
    bad = lakestack("models", "alias", "set", "dev.churn.model", "champion", "7", ws=path)
    assert bad.returncode == EXIT["not_found"] and "no version 7" in bad.stderr


def test_promote_approve_rollback_and_copy_from_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "ws"
    ws = Workspace.init(path)
    ws.schemas.create("staging.churn")
    for _ in range(2):
        with ws.tracking.start_run("churn"):
            model = LogisticRegression().fit(np.array([[0.0], [1.0]]), [0, 1])
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        version = ws.models.register(info.model_uri, "staging.churn.model").version
        ws.models.set_tag("staging.churn.model", version, "model_validation_status", "PASSED")
    ws.schemas.create("prod.churn")
    ws.close()

    assert "staging.churn.model@champion -> version 1 (was no champion)" in ok(
        "models", "promote", "staging.churn.model", "1", ws=path
    )
    asked = ok("models", "promote", "staging.churn.model", "2", "--require-approval", ws=path)
    assert "awaits approval: lakestack models approve staging.churn.model 2" in asked
    assert "-> version 2 (by admin)" in ok("models", "approve", "staging.churn.model", "2", ws=path)
    assert "version 2 -> version 1" in ok("models", "rollback", "staging.churn.model", ws=path)
    again = lakestack("models", "rollback", "staging.churn.model", ws=path)
    assert again.returncode == EXIT["not_found"] and "no previous champion" in again.stderr
    states = json.loads(ok("models", "deployments", "staging.churn.model", "--json", ws=path))
    assert [(d["version"], d["state"], d["decided_by"]) for d in states] == [
        (2, "ROLLED_BACK", "admin"),
        (1, "DEPLOYED", None),
    ]
    assert "Copied staging.churn.model/1 -> prod.churn.model/1" in ok(
        "models", "copy", "staging.churn.model/1", "prod.churn.model", ws=path
    )
