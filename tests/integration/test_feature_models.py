"""Models packaged with their feature spec, and batch scoring that looks features up by key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import mlflow
import pyarrow as pa
import pytest
from sklearn.linear_model import LogisticRegression

from lakestack import FeatureLookup, Workspace
from lakestack.errors import InvalidParameter, PrivilegeMissing
from lakestack.features import TrainingSet

NAME = "dev.churn.model"


def day(d: int) -> datetime:
    return datetime(2026, 1, d)


LABELS = pa.table(
    {
        "cid": [1, 1, 2, 2, 3, 3],
        "at": [day(2), day(6), day(2), day(6), day(2), day(6)],
        "y": [1, 0, 0, 1, 1, 0],
    }
)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Workspace, TrainingSet, LogisticRegression]]:
    ws = Workspace.init(tmp_path_factory.mktemp("fm") / "ws")
    ws.schemas.create("dev.churn")
    ws.features.create_table(
        "dev.churn.spend",
        primary_keys="cid",
        timestamp_key="ts",
        df=pa.table(
            {
                "cid": [1, 1, 2, 2, 3, 3],
                "ts": [day(1), day(5)] * 3,
                "spend": [10.0, 0.0, 1.0, 50.0, 30.0, 2.0],
            }
        ),
    )
    ws.features.create_table(
        "dev.churn.profile", primary_keys="cid", df=pa.table({"cid": [1, 2, 3], "age": [20.0, 60.0, 35.0]})
    )
    training = ws.features.create_training_set(
        LABELS,
        [
            FeatureLookup("dev.churn.spend", "cid", timestamp_lookup_key="at"),
            FeatureLookup("dev.churn.profile", "cid"),
        ],
        label="y",
        exclude_columns=["cid", "at"],
    )
    frame = training.load_df(to="pandas")
    model = LogisticRegression().fit(frame[["spend", "age"]], frame["y"])
    with ws.tracking.start_run("churn"):
        logged = ws.models.log_model(
            model,
            "sklearn",
            training_set=training,
            registered_model_name=NAME,
            pip_requirements=["scikit-learn"],
        )
    assert logged.registered_version == 1
    ws.models.set_alias(NAME, "champion", 1)
    yield ws, training, model
    ws.close()


def test_score_batch_equals_predicting_on_the_training_data(
    trained: tuple[Workspace, TrainingSet, LogisticRegression],
) -> None:
    ws, training, model = trained
    expected = list(model.predict(training.load_df(to="pandas")[["spend", "age"]]))
    scored = ws.models.score_batch(f"models:/{NAME}@champion", LABELS.drop_columns(["y"]))
    assert scored.column("prediction").to_pylist() == expected
    assert scored.column("model_version").to_pylist() == [1] * LABELS.num_rows
    assert scored.column_names == ["cid", "at", "spend", "age", "prediction", "model_version"]


def test_input_columns_override_stored_features(
    trained: tuple[Workspace, TrainingSet, LogisticRegression],
) -> None:
    ws, _, model = trained
    keys = pa.table({"cid": [2, 2], "at": [day(6), day(6)], "spend": [0.0, 500.0]})
    scored = ws.models.score_batch(f"models:/{NAME}/1", keys)
    assert scored.column("spend").to_pylist() == [0.0, 500.0]  # the caller's values, not the stored 50.0
    assert scored.column("age").to_pylist() == [60.0, 60.0]  # still looked up
    assert scored.column("prediction").to_pylist() == list(
        model.predict(scored.select(["spend", "age"]).to_pandas())
    )


def test_without_a_timestamp_the_newest_features_are_used(
    trained: tuple[Workspace, TrainingSet, LogisticRegression],
) -> None:
    ws, _, _ = trained
    scored = ws.models.score_batch(f"models:/{NAME}/1", pa.table({"cid": [1, 2]}))
    assert scored.column("spend").to_pylist() == [0.0, 50.0]


def test_the_package_loads_with_plain_mlflow_and_carries_signature_and_example(
    trained: tuple[Workspace, TrainingSet, LogisticRegression],
) -> None:
    ws, training, model = trained
    mlflow.set_registry_uri(ws.mlflow_tracking_uri)
    info = mlflow.models.get_model_info(f"models:/{NAME}/1")
    assert [c.name for c in info.signature.inputs] == ["spend", "age"]
    assert info.saved_input_example_info is not None
    spec = info.metadata["lakestack"]["feature_spec"]
    assert {
        lookup["table_name"]: lookup["table_version"] for lookup in spec["lookups"]
    } == training.table_versions
    plain = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    frame = training.load_df(to="pandas")
    assert list(plain.predict(frame)) == list(model.predict(frame[["spend", "age"]]))


def test_scoring_needs_execute_on_the_model_and_select_on_its_features(
    trained: tuple[Workspace, TrainingSet, LogisticRegression],
) -> None:
    ws, _, _ = trained
    ws.principals.create("scorer")
    ws.grants.grant("USE_CATALOG", "catalog", "dev", "scorer")
    ws.grants.grant("USE_SCHEMA", "schema", "dev.churn", "scorer")
    scorer = ws.as_principal("scorer")
    keys = pa.table({"cid": [1]})
    with pytest.raises(PrivilegeMissing, match="EXECUTE"):
        scorer.models.score_batch(f"models:/{NAME}/1", keys)
    ws.grants.grant("EXECUTE", "model", NAME, "scorer")
    with pytest.raises(PrivilegeMissing, match="SELECT"):
        scorer.models.score_batch(f"models:/{NAME}/1", keys)
    ws.grants.grant("SELECT", "schema", "dev.churn", "scorer")
    assert scorer.models.score_batch(f"models:/{NAME}/1", keys).num_rows == 1


def test_log_model_needs_a_run_and_a_known_flavor(
    trained: tuple[Workspace, TrainingSet, LogisticRegression],
) -> None:
    ws, training, model = trained
    with pytest.raises(InvalidParameter, match="active run"):
        ws.models.log_model(model, "sklearn", training_set=training)
    with ws.tracking.start_run("churn"), pytest.raises(InvalidParameter, match="Unknown MLflow flavor"):
        ws.models.log_model(model, "no_such_flavor", training_set=training)
