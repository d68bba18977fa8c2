"""MLflow runs that record their code version, environment and exact table inputs by themselves."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pyarrow as pa
import pytest

from lakestack import FeatureLookup, Workspace
from lakestack.errors import InvalidName


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """One workspace for the module: creating an MLflow store takes seconds."""
    workspace = Workspace.init(tmp_path_factory.mktemp("tracking") / "ws")
    workspace.schemas.create("dev.churn")
    workspace.tables.create("dev.churn.events", data=pa.table({"k": [1, 2], "x": [1.0, 2.0]}))
    workspace.tables.write("dev.churn.events", pa.table({"k": [3], "x": [3.0]}))  # now at version 1
    workspace.features.create_table(
        "dev.churn.f", primary_keys="k", df=pa.table({"k": [1, 2], "f": [3.0, 4.0]})
    )
    yield workspace
    workspace.close()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git checkout with one commit, as the current directory."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    git("init", "-q", "-b", "feature-x")
    (tmp_path / "train.py").write_text("print('train')\n")
    git("add", "train.py")
    git("-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "first")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _inputs(run_id: str) -> list[tuple[str, int]]:
    run = mlflow.get_run(run_id)
    return sorted(
        (d.dataset.name, json.loads(d.dataset.source)["delta_table_version"])
        for d in run.inputs.dataset_inputs
    )


def test_a_run_records_its_code_version_principal_and_environment(ws: Workspace, repo: Path) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    with ws.tracking.start_run("churn", run_name="clean", params={"alpha": 0.5}) as run:
        mlflow.log_metric("auc", 0.81)
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["mlflow.source.git.branch"] == "feature-x"
    assert tags["lakestack.git.dirty"] == "false"
    assert tags["lakestack.principal"] == "admin"
    recorded = mlflow.get_run(run.info.run_id)
    assert recorded.data.params == {"alpha": "0.5"} and recorded.data.metrics == {"auc": 0.81}
    assert mlflow.get_experiment(recorded.info.experiment_id).name == "/lakestack/churn"
    assert recorded.info.artifact_uri.startswith(f"{ws.storage_root}/_mlflow/churn")  # not ./mlruns
    env = mlflow.artifacts.load_dict(f"{recorded.info.artifact_uri}/environment/python_env.json")
    assert "lakestack" in env["packages"] and env["python"].startswith("3.")

    (repo / "train.py").write_text("print('changed')\n")
    with ws.tracking.start_run("churn") as dirty:
        pass
    assert mlflow.get_run(dirty.info.run_id).data.tags["lakestack.git.dirty"] == "true"


def test_table_versions_read_inside_a_run_become_dataset_inputs(ws: Workspace) -> None:
    outside = ws.tables.read("dev.churn.events")  # before the run: not an input of it
    assert outside.num_rows == 3
    with ws.tracking.start_run("churn") as run:
        training = ws.features.create_training_set(
            pa.table({"k": [1, 2], "y": [0, 1]}), [FeatureLookup("dev.churn.f", "k")], label="y"
        )
        training.load_df()
        training.load_df()  # the same version twice is one input
        ws.sql("SELECT count(*) FROM dev.churn.events")
        ws.tables.read("dev.churn.events", version=0)
    assert _inputs(run.info.run_id) == [("dev.churn.events", 0), ("dev.churn.events", 1), ("dev.churn.f", 0)]

    with ws.tracking.start_run("churn") as later:
        pass
    assert _inputs(later.info.run_id) == []


def test_outside_a_git_checkout_there_is_no_code_version(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with ws.tracking.start_run("churn") as run:
        pass
    assert "mlflow.source.git.commit" not in mlflow.get_run(run.info.run_id).data.tags


def test_runs_are_listed_per_project_newest_first(ws: Workspace) -> None:
    with ws.tracking.start_run("pricing", run_name="one"):
        pass
    with ws.tracking.start_run("pricing", run_name="two"):
        pass
    assert [r.info.run_name for r in ws.tracking.runs("pricing")] == ["two", "one"]
    assert ws.tracking.runs("nothing_here") == []
    with pytest.raises(InvalidName):
        ws.tracking.experiment_name("../escape")
