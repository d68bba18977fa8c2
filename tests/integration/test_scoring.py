"""Batch and incremental scoring of Delta tables (`ws.models.score_table`): output columns and
modes, feature lookups, exactly-once incremental runs across a SIGKILL, grants, and the job task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

from lakestack import FeatureLookup, Workspace
from lakestack.cli.main import app
from lakestack.errors import ChangesUnavailable, InvalidParameter, PrivilegeMissing
from lakestack.models.scoring_commit import PAUSE_BEFORE_COMMIT_ENV

MODEL = "dev.shop.spend_model"
INPUT = "dev.shop.customers"


def customers(ids: range, shift: float = 0.0) -> pa.Table:
    x = np.array(list(ids), dtype=float)
    return pa.table({"id": list(ids), "x1": x + shift, "x2": (x * 7.0) % 5.0})


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = Workspace.init(tmp_path_factory.mktemp("scoring") / "ws")
    workspace.schemas.create("dev.shop")
    train = customers(range(20)).to_pandas()
    for version, slope in ((1, 1.0), (2, 3.0)):
        model = LinearRegression().fit(train[["x1", "x2"]], train["x1"] * slope + 1.0)
        with workspace.tracking.start_run("shop"):
            logged = workspace.models.log_model(
                model,
                "sklearn",
                registered_model_name=MODEL,
                input_example=train[["x1", "x2"]].head(3),
                pip_requirements=["scikit-learn"],  # inferring them would load the model in a subprocess
            )
        assert logged.registered_version == version
    workspace.models.set_alias(MODEL, "champion", 1)
    yield workspace
    workspace.close()


def fresh_input(ws: Workspace, name: str, rows: pa.Table, change_data_feed: bool = True) -> str:
    if ws.tables.exists(name):
        ws.tables.drop(name)
    ws.tables.create(name, data=rows, change_data_feed=change_data_feed)
    return name


def expected(x1: list[float], slope: float = 1.0) -> list[Any]:
    return [pytest.approx(v * slope + 1.0) for v in x1]


def test_champion_scoring_appends_with_keys_model_version_and_time(ws: Workspace) -> None:
    source = fresh_input(ws, "dev.shop.batch_in", customers(range(10)))
    first = ws.models.score_table(f"models:/{MODEL}@champion", source, "dev.shop.batch_out", batch_size=4)
    assert (first.rows_scored, first.model_version, first.output_version) == (10, 1, 1)
    out = ws.tables.read("dev.shop.batch_out").sort_by("id")
    assert out.column_names == ["id", "prediction", "model_name", "model_version", "scored_at"]
    assert out.column("id").to_pylist() == list(range(10))
    assert out.column("prediction").to_pylist() == expected([float(i) for i in range(10)])
    assert set(out.column("model_name").to_pylist()) == {MODEL}
    assert set(out.column("scored_at").to_pylist()) == {first.scored_at}  # one timestamp per run
    # One commit per run however many batches; the second run appends, so history accumulates.
    second = ws.models.score_table(f"models:/{MODEL}/2", source, "dev.shop.batch_out", batch_size=4)
    assert second.output_version == first.output_version + 1
    out = ws.tables.read("dev.shop.batch_out")
    assert out.num_rows == 20
    by_version = out.group_by("model_version").aggregate([("id", "count")]).sort_by("model_version")
    assert by_version.to_pylist() == [
        {"model_version": 1, "id_count": 10},
        {"model_version": 2, "id_count": 10},
    ]
    history = ws.tables.history("dev.shop.batch_out")
    assert history[0].principal == ws.caller.name
    upstream = ws.lineage.upstream("dev.shop.batch_out", second.output_version)
    assert {(n.ref.kind, n.ref.name, n.ref.version) for n in upstream.nodes[1:]} >= {
        ("table", source, 0),
        ("model", MODEL, 2),
    }


def test_overwrite_keeps_one_run_and_merge_one_row_per_key(ws: Workspace) -> None:
    source = fresh_input(ws, "dev.shop.modes_in", customers(range(6)))
    ws.models.score_table(f"models:/{MODEL}/1", source, "dev.shop.modes_over")
    ws.models.score_table(f"models:/{MODEL}/2", source, "dev.shop.modes_over", mode="overwrite")
    over = ws.tables.read("dev.shop.modes_over")
    assert over.num_rows == 6 and set(over.column("model_version").to_pylist()) == {2}

    ws.models.score_table(f"models:/{MODEL}/1", source, "dev.shop.modes_merge", mode="merge")
    ws.tables.write(source, customers(range(6, 9)))
    merged = ws.models.score_table(f"models:/{MODEL}/2", source, "dev.shop.modes_merge", mode="merge")
    assert merged.rows_scored == 9
    out = ws.tables.read("dev.shop.modes_merge").sort_by("id")
    assert out.column("id").to_pylist() == list(range(9))  # upserted by key: no duplicates
    assert set(out.column("model_version").to_pylist()) == {2}
    assert out.column("prediction").to_pylist() == expected([float(i) for i in range(9)], slope=3.0)
    ws.tables.write(source, pa.table({"id": pa.array([None], pa.int64()), "x1": [1.0], "x2": [1.0]}))
    with pytest.raises(InvalidParameter, match=r"Key column\(s\) id of 'dev\.shop\.modes_in' hold nulls"):
        ws.models.score_table(f"models:/{MODEL}/2", source, "dev.shop.modes_merge", mode="merge")
    assert ws.tables.get("dev.shop.modes_merge").version == merged.output_version  # nothing written
    with pytest.raises(InvalidParameter, match="Unknown scoring mode 'sideways'"):
        ws.models.score_table(f"models:/{MODEL}/1", source, "dev.shop.modes_merge", mode="sideways")


def test_a_feature_store_model_is_scored_through_its_lookups(ws: Workspace) -> None:
    ws.features.create_table(
        "dev.shop.profile",
        primary_keys="cid",
        df=pa.table({"cid": [1, 2, 3, 4], "age": [20.0, 60.0, 35.0, 41.0], "visits": [1.0, 9.0, 4.0, 2.0]}),
    )
    labels = pa.table({"cid": [1, 2, 3, 4], "y": [5.0, 1.0, 3.0, 2.0]})
    training = ws.features.create_training_set(
        labels, [FeatureLookup("dev.shop.profile", "cid")], label="y", exclude_columns=["cid"]
    )
    frame = training.load_df(to="pandas")
    model = LinearRegression().fit(frame[["age", "visits"]], frame["y"])
    with ws.tracking.start_run("shop"):
        ws.models.log_model(
            model,
            "sklearn",
            training_set=training,
            registered_model_name="dev.shop.fs_model",
            pip_requirements=["scikit-learn"],
        )
    source = fresh_input(ws, "dev.shop.fs_keys", pa.table({"cid": [4, 2, 3, 1]}))
    result = ws.models.score_table("models:/dev.shop.fs_model/1", source, "dev.shop.fs_scores", batch_size=3)
    out = ws.tables.read("dev.shop.fs_scores").sort_by("cid")
    assert out.column_names == ["cid", "prediction", "model_name", "model_version", "scored_at"]
    batch = ws.models.score_batch("models:/dev.shop.fs_model/1", pa.table({"cid": [1, 2, 3, 4]}))
    assert out.column("prediction").to_pylist() == pytest.approx(batch.column("prediction").to_pylist())
    assert result.rows_scored == 4


def test_incremental_scores_only_new_rows_and_nothing_twice(ws: Workspace) -> None:
    source = fresh_input(ws, "dev.shop.inc_in", customers(range(5)))
    out = "dev.shop.inc_out"
    first = ws.models.score_table(f"models:/{MODEL}/1", source, out, incremental=True)
    assert (first.rows_scored, first.starting_version) == (5, None)  # first run: the whole table
    idle = ws.models.score_table(f"models:/{MODEL}/1", source, out, incremental=True)
    assert (idle.rows_scored, idle.output_version) == (0, None)
    assert ws.tables.get(out).version == first.output_version  # no new data: nothing written

    ws.tables.write(source, customers(range(5, 8)))
    ws.tables.merge(source, customers(range(2, 3), shift=100.0), keys=["id"])  # an update
    ws.tables.merge(source, customers(range(7, 8), shift=50.0), keys=["id"])  # new row, then updated
    third = ws.models.score_table(f"models:/{MODEL}/1", source, out, incremental=True)
    assert third.starting_version == 1 and third.input_version == 3
    scored = ws.tables.read(out, version=third.output_version)
    latest = scored.filter(pc.equal(scored.column("scored_at"), pa.scalar(third.scored_at)))
    assert sorted(latest.column("id").to_pylist()) == [2, 5, 6, 7]
    by_id = dict(zip(latest.column("id").to_pylist(), latest.column("prediction").to_pylist(), strict=True))
    assert by_id[2] == pytest.approx(103.0) and by_id[7] == pytest.approx(58.0)  # newest images

    # A delete scores nothing but still moves the checkpoint, in a commit of no rows.
    ws.tables.merge(source, customers(range(0, 1)), keys=["id"], delete_condition="true")
    deleted = ws.models.score_table(f"models:/{MODEL}/1", source, out, incremental=True)
    assert deleted.rows_scored == 0 and deleted.output_version == third.output_version + 1
    assert ws.tables.read(out).num_rows == scored.num_rows
    assert ws.models.score_table(f"models:/{MODEL}/1", source, out, incremental=True).output_version is None

    # A recreated input restarts its versions: the checkpoint no longer applies.
    fresh_input(ws, source, customers(range(3)))
    with pytest.raises(ChangesUnavailable, match="dropped and recreated"):
        ws.models.score_table(f"models:/{MODEL}/1", source, out, incremental=True)


def test_incremental_needs_the_change_feed(ws: Workspace) -> None:
    source = fresh_input(ws, "dev.shop.nocdf_in", customers(range(3)), change_data_feed=False)
    ws.models.score_table(f"models:/{MODEL}/1", source, "dev.shop.nocdf_out", incremental=True)
    ws.tables.write(source, customers(range(3, 4)))
    with pytest.raises(ChangesUnavailable, match=r"'dev\.shop\.nocdf_in' .*change data feed is off"):
        ws.models.score_table(f"models:/{MODEL}/1", source, "dev.shop.nocdf_out", incremental=True)


CRASHING_RUN = textwrap.dedent(
    """
    import sys
    from lakestack import Workspace
    ws = Workspace.open(sys.argv[1])
    ws.models.score_table(sys.argv[2], sys.argv[3], sys.argv[4], incremental=True, batch_size=2)
    """
)


def start_paused(ws: Workspace, source: str, out: str, marker: Path) -> subprocess.Popen[bytes]:
    """An incremental run in another process, that will stop with every row scored, before its
    commit (see `paused`)."""
    env = {**os.environ, PAUSE_BEFORE_COMMIT_ENV: str(marker)}
    with open(marker.with_suffix(".stderr"), "w") as stderr:  # a file: a full pipe would block it
        return subprocess.Popen(
            [sys.executable, "-c", CRASHING_RUN, str(ws.folder), f"models:/{MODEL}/1", source, out],
            env=env,
            stderr=stderr,
        )


def paused(process: subprocess.Popen[bytes], marker: Path) -> None:
    deadline = time.monotonic() + 90
    while not marker.exists():
        assert process.poll() is None, marker.with_suffix(".stderr").read_text()
        assert time.monotonic() < deadline, "the scoring process never reached its commit"
        time.sleep(0.05)


def test_a_crash_before_the_commit_leaves_nothing_and_racing_runs_cannot_both_commit(
    ws: Workspace, tmp_path: Path
) -> None:
    source = fresh_input(ws, "dev.shop.crash_in", customers(range(4)))
    out = "dev.shop.crash_out"
    ws.models.score_table(f"models:/{MODEL}/1", source, out, incremental=True)
    before = ws.tables.get(out).version
    ws.tables.write(source, customers(range(4, 9)))
    # Two runs from the same checkpoint, side by side (one start-up's time on 2 cores).
    crashing, racing = tmp_path / "crashing", tmp_path / "racing"
    first, second = start_paused(ws, source, out, crashing), start_paused(ws, source, out, racing)
    paused(first, crashing)
    paused(second, racing)

    os.kill(first.pid, signal.SIGKILL)  # every row scored, data files written, nothing committed
    first.wait()
    assert ws.tables.get(out).version == before
    assert ws.tables.read(out).num_rows == 4

    rerun = ws.models.score_table(f"models:/{MODEL}/1", source, out, incremental=True)
    assert rerun.rows_scored == 5
    ids = ws.tables.read(out).column("id").to_pylist()
    assert sorted(ids) == list(range(9))  # each input row exactly once

    racing.unlink()  # the other run goes on to commit the same rows over the same checkpoint
    assert second.wait(timeout=60) != 0
    assert "Another writer committed to 'dev.shop.crash_out'" in racing.with_suffix(".stderr").read_text()
    assert sorted(ws.tables.read(out).column("id").to_pylist()) == list(range(9))


def test_scoring_needs_execute_and_writes_nothing_without_it(ws: Workspace) -> None:
    source = fresh_input(ws, "dev.shop.grants_in", customers(range(3)))
    ws.principals.create("scorer")
    for privilege, kind, name in [
        ("USE_CATALOG", "catalog", "dev"),
        ("USE_SCHEMA", "schema", "dev.shop"),
        ("CREATE_TABLE", "schema", "dev.shop"),
        ("SELECT", "table", source),
    ]:
        ws.grants.grant(privilege, kind, name, "scorer")
    scorer = ws.as_principal("scorer")
    with pytest.raises(PrivilegeMissing, match="EXECUTE"):
        scorer.models.score_table(f"models:/{MODEL}@champion", source, "dev.shop.grants_out")
    assert not ws.tables.exists("dev.shop.grants_out")
    ws.grants.grant("EXECUTE", "model", MODEL, "scorer")
    result = scorer.models.score_table(f"models:/{MODEL}@champion", source, "dev.shop.grants_out")
    assert result.rows_scored == 3
    # Someone else's output: scoring into it needs MODIFY there.
    ws.tables.create("dev.shop.grants_theirs", data=ws.tables.read("dev.shop.grants_out"))
    ws.grants.grant("SELECT", "table", "dev.shop.grants_theirs", "scorer")
    with pytest.raises(PrivilegeMissing, match="MODIFY"):
        scorer.models.score_table(f"models:/{MODEL}@champion", source, "dev.shop.grants_theirs")
    assert ws.tables.read("dev.shop.grants_theirs").num_rows == 3


def test_a_job_runs_the_library_score_task(ws: Workspace, tmp_path: Path) -> None:
    source = fresh_input(ws, "dev.shop.job_in", customers(range(7)))
    spec = tmp_path / "job.yml"
    spec.write_text(
        textwrap.dedent(
            f"""
            name: nightly_scoring
            tasks:
              - task_key: score
                python_task:
                  function: "lakestack.jobs.library.score:score_table"
                  parameters:
                    model_uri: "models:/{MODEL}@champion"
                    input_table: {source}
                    output_table: dev.shop.job_out
                    incremental: "true"
            """
        )
    )
    ws.jobs.create(spec, folder=tmp_path)
    run = ws.jobs.run_now("nightly_scoring")
    assert run.state == "SUCCESS", run
    values = run.task("score").task_values
    assert values["rows_scored"] == 7 and values["model_version"] == 1 and values["input_version"] == 0
    assert ws.tables.read("dev.shop.job_out").num_rows == 7
    # The CLI continues from the job's checkpoint: only the two new rows.
    ws.tables.write(source, customers(range(7, 9)))
    command = ["models", "score", f"models:/{MODEL}@champion", source, "dev.shop.job_out", "--incremental"]
    printed = CliRunner().invoke(app, ["-w", str(ws.folder), *command, "--json"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout)["rows_scored"] == 2
    assert sorted(ws.tables.read("dev.shop.job_out").column("id").to_pylist()) == list(range(9))


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_data_scores_the_same_predictions_in_one_commit(ws: Workspace, ray_address: str) -> None:
    ray = pytest.importorskip("ray")
    source = fresh_input(ws, "dev.shop.ray_in", customers(range(50)))
    local = ws.models.score_table(f"models:/{MODEL}/1", source, "dev.shop.ray_local", engine="local")
    assert not ray.is_initialized(), "another test left this process connected to Ray"
    ray.init(address=ray_address, log_to_driver=False)  # the test run's local cluster
    try:
        result = ws.models.score_table(f"models:/{MODEL}/1", source, "dev.shop.ray_out", batch_size=10)
    finally:
        ray.shutdown()
    assert (result.engine, result.rows_scored, result.output_version) == ("ray", 50, 1)  # auto: Ray is up
    ours = ws.tables.read("dev.shop.ray_out").sort_by("id")
    theirs = ws.tables.read("dev.shop.ray_local").sort_by("id")
    assert ours.column("id").to_pylist() == list(range(50))
    assert ours.column("prediction").to_pylist() == pytest.approx(theirs.column("prediction").to_pylist())
    assert local.engine == "local"
