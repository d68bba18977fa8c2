"""`lakestack jobs` as a user drives it: real CLI processes, real task processes, real exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.e2e.test_cli import EXIT, lakestack, ok
from tests.integration.jobs_project import make_project

from lakestack import Workspace

RUN_NOT_SUCCESSFUL = 8


@pytest.fixture
def nightly(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A workspace (made in-process: faster than the CLI), a job folder, and the flag file its
    second task needs to succeed. Returns (workspace, project, flag)."""
    ws = tmp_path / "ws"
    Workspace.init(ws).close()
    project = make_project(tmp_path / "project")
    flag = tmp_path / "ready"
    (project / "job.yml").write_text(
        f"""
name: nightly
parameters: [{{name: n, default: 1}}]
tasks:
  - task_key: first
    python_task: {{function: "steps:add_one", parameters: {{n: "{{{{job.parameters.n}}}}"}}}}
  - task_key: second
    depends_on: [{{task_key: first}}]
    python_task: {{function: "steps:needs_file", parameters: {{path: "{flag}"}}}}
"""
    )
    return ws, project, flag


def test_create_run_inspect_and_repair_a_job_from_the_cli(nightly: tuple[Path, Path, Path]) -> None:
    ws, project, flag = nightly
    (project / "broken.yml").write_text(
        "name: broken\ntasks: [{task_key: a, python_task: {function: nope}}]\n"
    )
    bad = lakestack("jobs", "create", str(project / "broken.yml"), ws=ws)
    assert bad.returncode == EXIT["invalid"]
    assert "broken.yml:2:37: tasks[0].python_task.function: function must look like" in bad.stderr

    assert "Created job 'nightly' (2 tasks)" in ok("jobs", "create", str(project / "job.yml"), ws=ws)
    assert lakestack("jobs", "create", str(project / "job.yml"), ws=ws).returncode == EXIT["exists"]

    failed = lakestack("jobs", "run", "nightly", "--param", "n=41", "--json", ws=ws)
    assert failed.returncode == RUN_NOT_SUCCESSFUL, failed.stderr
    run = json.loads(failed.stdout)
    assert run["state"] == "FAILED" and run["parameters"] == {"n": "41"}
    assert [(t["task_key"], t["state"]) for t in run["tasks"]] == [("first", "SUCCESS"), ("second", "FAILED")]
    assert run["tasks"][0]["task_values"] == {"n": 42}
    run_id = str(run["run_id"])

    logs = lakestack("jobs", "logs", run_id, "second", ws=ws)
    assert logs.returncode == 0 and "FileNotFoundError" in logs.stderr

    flag.write_text("")
    repaired = json.loads(ok("jobs", "repair", run_id, "--json", ws=ws))
    assert repaired["state"] == "SUCCESS" and repaired["repair_count"] == 1
    assert [t["attempt"] for t in repaired["tasks"]] == [1, 2]


def test_run_with_a_table_or_in_the_background_from_the_cli(nightly: tuple[Path, Path, Path]) -> None:
    ws, project, flag = nightly
    flag.write_text("")
    ok("jobs", "create", str(project / "job.yml"), ws=ws)

    table = ok("jobs", "run", "nightly", ws=ws)
    assert "SUCCESS" in table and "n=2" in table

    started = json.loads(ok("jobs", "run", "nightly", "--no-wait", "--json", ws=ws))
    deadline = time.monotonic() + 60
    with Workspace.open(ws) as opened:  # poll in-process: a CLI call per poll is slow
        while (state := opened.jobs.get_run(started["run_id"]).state) != "SUCCESS":
            assert state in ("PENDING", "QUEUED", "RUNNING") and time.monotonic() < deadline, state
            time.sleep(0.2)
    shown = json.loads(ok("jobs", "get-run", str(started["run_id"]), "--json", ws=ws))
    assert shown["state"] == "SUCCESS" and shown["started_by"] == "admin"

    missing = lakestack("jobs", "run", "nightly", "--param", "m=1", ws=ws)
    assert missing.returncode == EXIT["invalid"] and "has no parameter 'm'" in missing.stderr
    assert lakestack("jobs", "get-run", "999", ws=ws).returncode == EXIT["not_found"]
