"""`make demo` end to end: examples/demo.py runs and leaves a clean silver table behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from lakestack import Workspace
from lakestack.datasets import CURRENCIES

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
KNOWN = ", ".join(f"'{c}'" for c in CURRENCIES)


def _run_demo(workspace: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO), "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.slow
def test_demo_runs_and_silver_is_clean(tmp_path: Path) -> None:
    workspace = tmp_path / "demo-ws"
    done = _run_demo(workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout[done.stdout.index("Summary") :]
    assert "dev.silver.transactions" in summary
    assert "PermissionDenied" in done.stdout
    assert f"lakestack -w {workspace} tables history dev.silver.transactions" in done.stdout

    with Workspace.open(workspace) as ws:
        silver = ws.sql(
            f"""
            SELECT count(*) AS n,
                   count(*) - count(DISTINCT transaction_id) AS duplicate_ids,
                   count(*) FILTER (WHERE amount IS NULL OR amount <= 0) AS bad_amounts,
                   count(*) FILTER (WHERE currency NOT IN ({KNOWN})) AS unknown_currencies
            FROM dev.silver.transactions
            """  # noqa: S608
        ).to_pylist()[0]
        assert silver["n"] > 50_000
        assert silver["duplicate_ids"] == 0
        assert silver["bad_amounts"] == 0
        assert silver["unknown_currencies"] == 0

        # Every valid bronze transaction reached silver exactly once.
        bronze = ws.sql(
            f"""
            SELECT count(DISTINCT transaction_id) FILTER (WHERE amount > 0 AND currency IN ({KNOWN}))
                       AS valid,
                   count(*) - count(DISTINCT transaction_id) AS duplicate_ids
            FROM dev.bronze.transactions
            """  # noqa: S608
        ).to_pylist()[0]
        assert bronze["duplicate_ids"] > 0
        assert silver["n"] == bronze["valid"]

        # Two merges, each a version; the refused backfill added none.
        assert ws.tables.get("dev.silver.transactions").version == 2
        latest = ws.tables.history("dev.silver.transactions", limit=1)[0]
        assert {e["name"] for e in latest.expectations} == {
            "has_keys",
            "valid_amount",
            "known_currency",
            "plausible_amount",
        }

        # The feature step: weekly snapshots never use a purchase from their own future.
        activity = ws.features.get_table("dev.churn.customer_activity")
        assert activity.primary_keys == ["customer_id", "ts"] and "spend_28d" in activity.features
        leaks = ws.sql(
            """
            SELECT count(*) AS n FROM dev.churn.customer_activity AS a
            WHERE a.purchases_28d > (SELECT count(*) FROM dev.silver.transactions AS t
                                     WHERE t.customer_id = a.customer_id AND t.ts < a.ts)
            """
        ).to_pylist()[0]["n"]
        assert leaks == 0
        # The table-update trigger fired once, for silver's new version, and the report ran.
        (report,) = ws.jobs.runs("silver report")
        assert (report.state, report.trigger) == ("SUCCESS", "table_update")
        counted = report.task("per_currency").output or {}
        assert sum(row["transactions"] for row in counted["rows"]) == silver["n"]
        # The job: four tasks; promote got the model URI from train's task values.
        (run,) = ws.jobs.runs("churn pipeline")
        assert run.state == "SUCCESS"
        promoted = ws.jobs.get_run(run.run_id).task("promote").output
        assert promoted == {"result": {"champion": "dev.churn.model@champion -> version 1"}}
        # The model step: a registered champion, trained in a run that recorded its inputs.
        champion = ws.models.resolve("models:/dev.churn.model@champion")
        inputs = ws.tracking.get_run(champion.run_id or "").inputs.dataset_inputs
        assert {d.dataset.name for d in inputs} == {
            "dev.churn.customer_activity",
            "dev.churn.customer_profile",
        }
        scored = ws.models.score_batch(
            "models:/dev.churn.model@champion", pa.table({"customer_id": [100001]})
        )
        assert scored.column("prediction").to_pylist()[0] in (0, 1)
        # The lineage step: from the champion down to the silver version the feature job read.
        upstream = {(n.ref.kind, n.ref.name, n.ref.version) for n in ws.lineage.upstream(
            "dev.churn.model@champion").nodes}  # fmt: skip
        assert ("table", "dev.silver.transactions", 2) in upstream
        assert {kind for kind, _, _ in upstream} >= {"model", "run", "training_set", "table", "commit"}
    assert "Training set" in done.stdout and "pinned feature table versions" in done.stdout
    assert "test AUC" in done.stdout
    assert "<- table dev.silver.transactions v2" in done.stdout
    assert "up to date = True, 0 rows" in done.stdout  # the second publish had nothing to do


def test_demo_refuses_to_delete_a_folder_that_is_not_a_workspace(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    done = _run_demo(precious)
    assert done.returncode != 0
    assert "refusing to delete" in done.stderr
    assert (precious / "thesis.txt").read_text() == "do not delete"
