"""The MLflow registry under workspace names and grants."""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from lakestack import Workspace
from lakestack.errors import InvalidName, InvalidParameter, NotFound, PrivilegeMissing, SecurableNotFound
from lakestack.models.registry import parse_model_uri

X = np.array([[0.0], [1.0], [2.0], [3.0]])
Y = [0, 0, 1, 1]
NAME = "dev.churn.model"


def _log(ws: Workspace, flip: bool = False) -> str:
    with ws.tracking.start_run("churn"):
        model = LogisticRegression().fit(X, [1 - y for y in Y] if flip else Y)
        # Naming the requirements skips MLflow's slow inference of them.
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        return str(info.model_uri)


@pytest.fixture
def ws(workspace: Workspace) -> Iterator[Workspace]:
    workspace.schemas.create("dev.churn")
    workspace.principals.create("bob")
    yield workspace


def test_versions_aliases_and_plain_mlflow_uris(ws: Workspace) -> None:
    v1 = ws.models.register(_log(ws), NAME, description="baseline")
    v2 = ws.models.register(_log(ws, flip=True), NAME)
    assert (v1.version, v2.version) == (1, 2) and v1.description == "baseline"
    ws.models.set_alias(NAME, "champion", 1)
    ws.models.set_alias(NAME, "challenger", 2)
    info = ws.models.get(NAME)
    assert (
        info.aliases == {"champion": 1, "challenger": 2}
        and info.latest_version == 2
        and info.owner == "admin"
    )
    assert [v.version for v in ws.models.versions(NAME)] == [2, 1]
    assert ws.models.resolve(f"models:/{NAME}@challenger").version == 2
    assert ws.models.resolve(f"models:/{NAME}").version == 2  # no version: the latest

    assert list(ws.models.load(f"models:/{NAME}@champion").predict(X)) == Y
    # A plain MLflow client on the same store resolves the same alias.
    mlflow.set_registry_uri(ws.mlflow_tracking_uri)
    assert list(mlflow.pyfunc.load_model(f"models:/{NAME}@challenger").predict(X)) == [1 - y for y in Y]

    ws.models.set_tag(NAME, 2, "model_validation_status", "PASSED")
    assert ws.models.resolve(f"models:/{NAME}/2").tags == {"model_validation_status": "PASSED"}
    ws.models.delete_alias(NAME, "challenger")
    with pytest.raises(NotFound, match="no alias 'challenger'"):
        ws.models.resolve(f"models:/{NAME}@challenger")
    with pytest.raises(NotFound, match="no version 9"):
        ws.models.set_alias(NAME, "champion", 9)
    assert [m.full_name for m in ws.models.list("dev.churn")] == [NAME]


def test_grants_govern_register_load_and_aliases(ws: Workspace) -> None:
    uri = _log(ws)
    bob = ws.as_principal("bob")
    ws.grants.grant("USE_CATALOG", "catalog", "dev", "bob")
    ws.grants.grant("USE_SCHEMA", "schema", "dev.churn", "bob")
    with pytest.raises(PrivilegeMissing, match=r"CREATE_MODEL on schema 'dev\.churn'"):
        bob.models.register(uri, NAME)
    assert not ws.models.list("dev.churn")  # the refused registration left nothing behind

    ws.models.register(uri, NAME)
    with pytest.raises(PrivilegeMissing, match=r"EXECUTE on model 'dev\.churn\.model'"):
        bob.models.load(f"models:/{NAME}/1")
    with pytest.raises(PrivilegeMissing, match="MODIFY"):
        bob.models.register(uri, NAME)
    ws.grants.grant("EXECUTE", "model", NAME, "bob")
    assert list(bob.models.load(f"models:/{NAME}/1").predict(X)) == Y
    with pytest.raises(PrivilegeMissing, match="MANAGE"):
        bob.models.set_alias(NAME, "champion", 1)

    ws.grants.grant("CREATE_MODEL", "schema", "dev.churn", "bob")
    mine = bob.models.register(uri, "dev.churn.bobs_model")
    bob.models.set_alias(mine.name, "champion", mine.version)  # owners manage their own models
    denied = {e.action for e in ws.audit.list(principal="bob", denied_only=True)}
    assert {"models.create", "models.load", "models.register", "models.set_alias"} <= denied


def test_uris_and_names_are_validated(ws: Workspace) -> None:
    assert parse_model_uri("models:/prod.churn.model@champion")[2] == "champion"
    assert parse_model_uri("models:/prod.churn.model/3")[1] == 3
    for bad in ("runs:/abc/model", "models:/prod.churn.model/3/extra", "models:/model@champion"):
        with pytest.raises((InvalidParameter, InvalidName)):
            parse_model_uri(bad)
    with pytest.raises(SecurableNotFound, match=r"Model 'dev\.churn\.nothing' not found"):
        ws.models.get("dev.churn.nothing")
    ws.models.register(_log(ws), NAME)
    with pytest.raises(InvalidName):
        ws.models.set_alias(NAME, "bad alias", 1)
    ws.models.drop(NAME)
    assert ws.models.list("dev.churn") == []
