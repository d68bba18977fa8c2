"""Lineage recorded while code runs inside a tracked run, and read back up and down the chain."""

from __future__ import annotations

import json
from collections.abc import Iterator

import mlflow
import pyarrow as pa
import pytest
from sklearn.linear_model import LinearRegression

from lakestack import FeatureLookup, Workspace
from lakestack.errors import NotFound, PrivilegeMissing
from lakestack.lineage.store import NodeRef

RAW = "dev.shop.orders"
FEATURES = "dev.shop.customer_spend"
MODEL = "dev.shop.model"


def _feature_job(ws: Workspace) -> str:
    """Reads the raw table, writes the feature table; returns the run id."""
    with ws.tracking.start_run("shop", run_name="features") as run:
        orders = ws.tables.read(RAW)
        spend = orders.group_by("cid").aggregate([("amount", "sum")]).rename_columns(["cid", "spend"])
        if ws.tables.exists(FEATURES):
            ws.features.write_table(FEATURES, spend)
        else:
            ws.features.create_table(FEATURES, primary_keys="cid", df=spend)
    return str(run.info.run_id)


def _train(ws: Workspace) -> str:
    labels = pa.table({"cid": [1, 2, 3], "y": [1.0, 2.0, 3.0]})
    with ws.tracking.start_run("shop", run_name="train") as run:
        training = ws.features.create_training_set(
            labels, [FeatureLookup(FEATURES, "cid")], label="y", exclude_columns=["cid"]
        )
        frame = training.load_df(to="pandas")
        model = LinearRegression().fit(frame[["spend"]], frame["y"])
        ws.models.log_model(model, "sklearn", training_set=training, registered_model_name=MODEL)
    return str(run.info.run_id)


@pytest.fixture
def shop(workspace: Workspace) -> Iterator[Workspace]:
    workspace.schemas.create("dev.shop")
    workspace.tables.create(RAW, data=pa.table({"cid": [1, 2, 3, 1], "amount": [5.0, 7.0, 1.0, 2.0]}))
    workspace.tables.write(RAW, pa.table({"cid": [3], "amount": [4.0]}), mode="append")  # version 1
    yield workspace


def test_model_lineage_reaches_table_versions_and_the_code_commit(shop: Workspace) -> None:
    feature_run = _feature_job(shop)
    train_run = _train(shop)
    shop.models.set_alias(MODEL, "champion", 1)

    graph = shop.lineage.upstream(f"{MODEL}@champion")
    refs = [n.ref for n in graph.nodes]
    assert graph.root.ref == NodeRef("model", MODEL, 1)
    chain = [
        NodeRef("run", train_run),
        NodeRef("table", FEATURES, 0),
        NodeRef("run", feature_run),
        NodeRef("table", RAW, 1),
    ]
    assert all(ref in refs for ref in chain)
    (training_set,) = graph.find("training_set")
    assert training_set.properties["label"] == ["y"]
    assert training_set.properties["tables"] == {FEATURES: 0}

    def edge(source: NodeRef, target: NodeRef) -> bool:
        return (refs.index(source), refs.index(target)) in graph.edges

    assert edge(NodeRef("run", train_run), graph.root.ref)
    assert edge(training_set.ref, NodeRef("run", train_run))
    assert edge(NodeRef("table", FEATURES, 0), training_set.ref)
    assert edge(NodeRef("run", feature_run), NodeRef("table", FEATURES, 0))
    assert edge(NodeRef("table", RAW, 1), NodeRef("run", feature_run))
    commits = graph.find("commit")
    assert commits and commits[0].ref.name == mlflow.get_run(train_run).data.tags["mlflow.source.git.commit"]
    run_node = next(n for n in graph.nodes if n.ref == NodeRef("run", train_run))
    assert run_node.properties["experiment"] == "/lakestack/shop"

    down = shop.lineage.downstream(RAW)
    assert NodeRef("model", MODEL, 1) in [n.ref for n in down.nodes]
    assert shop.lineage.downstream(RAW, version=0).nodes[1:] == []  # nothing tracked read v0


def test_a_version_written_outside_runs_inherits_the_last_tracked_write(
    sqlite_workspace: Workspace,
) -> None:
    ws = sqlite_workspace
    ws.schemas.create("dev.shop")
    ws.tables.create(RAW, data=pa.table({"cid": [1], "amount": [5.0]}))
    run = _feature_job(ws)
    ws.features.write_table(FEATURES, pa.table({"cid": [9], "spend": [1.0]}))  # v1, untracked

    now = ws.lineage.upstream(FEATURES)  # no version: the table as it is now (v1)
    refs = [n.ref for n in now.nodes]
    assert refs[:3] == [NodeRef("table", FEATURES, 1), NodeRef("table", FEATURES, 0), NodeRef("run", run)]
    first = ws.lineage.upstream(FEATURES, version=0)
    assert [n.ref for n in first.nodes][:2] == [NodeRef("table", FEATURES, 0), NodeRef("run", run)]


def test_only_code_inside_a_run_is_recorded_and_each_edge_once(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.schemas.create("dev.shop")
    ws.tables.create(RAW, data=pa.table({"cid": [1], "amount": [5.0]}))
    ws.tables.read(RAW)  # outside any run
    assert ws.lineage.downstream(RAW).nodes[1:] == []
    with ws.tracking.start_run("shop") as run:
        for _ in range(3):
            ws.tables.read(RAW)
        ws.sql("SELECT count(*) FROM dev.shop.orders")
    graph = ws.lineage.downstream(RAW, version=0)
    assert [n.ref for n in graph.nodes] == [NodeRef("table", RAW, 0), NodeRef("run", run.info.run_id)]
    assert graph.edges == [(0, 1)]


def test_lineage_respects_grants_and_hides_what_the_caller_cannot_see(shop: Workspace) -> None:
    _feature_job(shop)
    shop.principals.create("bob")
    bob = shop.as_principal("bob")
    with pytest.raises(PrivilegeMissing):
        bob.lineage.upstream(FEATURES)
    shop.grants.grant("USE_CATALOG", "catalog", "dev", "bob")
    shop.grants.grant("USE_SCHEMA", "schema", "dev.shop", "bob")
    shop.grants.grant("SELECT", "table", FEATURES, "bob")

    graph = bob.lineage.upstream(FEATURES)
    (hidden,) = [n for n in graph.nodes if n.hidden]
    assert hidden.ref.kind == "table"
    text = json.dumps(graph.to_dict())
    assert RAW not in text and FEATURES in text
    with pytest.raises(NotFound):
        bob.lineage.upstream("run:does-not-exist")


def test_loading_a_model_inside_a_run_records_it_as_an_input(shop: Workspace) -> None:
    _feature_job(shop)
    _train(shop)
    with shop.tracking.start_run("shop", run_name="batch") as run:
        shop.models.score_batch(f"models:/{MODEL}/1", pa.table({"cid": [1, 2]}))
    graph = shop.lineage.downstream(f"{MODEL}/1")
    assert NodeRef("run", run.info.run_id) in [n.ref for n in graph.nodes]
