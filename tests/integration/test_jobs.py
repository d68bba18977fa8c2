"""Job runs end to end with real task processes: DAG order, task values, SQL, conditions, run_if,
retries, kills, timeouts, cancel, repair, malformed specs and grants."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import update
from tests.integration.jobs_project import alive, make_project, wait_for_pid

from lakestack import Workspace
from lakestack.catalog.models import Job, JobRun
from lakestack.errors import InvalidJobSpec, InvalidParameter, InvalidRunState, PrivilegeMissing
from lakestack.jobs.runner import run_if_decision
from lakestack.jobs.spec import Task
from lakestack.jobs.store import RunInfo

RUN_IFS = [
    "ALL_SUCCESS",
    "AT_LEAST_ONE_SUCCESS",
    "NONE_FAILED",
    "ALL_DONE",
    "AT_LEAST_ONE_FAILED",
    "ALL_FAILED",
]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


def job_file(project: Path, text: str, name: str = "job.yml") -> Path:
    path = project / name
    path.write_text(textwrap.dedent(text))
    return path


def states(run: RunInfo) -> dict[str, str]:
    return {t.task_key: t.state for t in run.tasks}


def test_a_diamond_passes_task_values_down_and_records_the_run(workspace: Workspace, project: Path) -> None:
    workspace.jobs.create(
        job_file(
            project,
            """
            name: diamond
            parameters: [{name: start, default: 1}]
            tasks:
              - task_key: root
                python_task: {function: "steps:add_one", parameters: {n: 0}}
              - task_key: left
                depends_on: [{task_key: root}]
                python_task: {function: "steps:add_one", parameters: {n: "{{tasks.root.values.n}}"}}
              - task_key: right
                depends_on: [{task_key: root}]
                python_task:
                  function: "steps:add_one"
                  parameters: {n: "{{tasks.root.values.n}}"}
              - task_key: join
                depends_on: [{task_key: left}, {task_key: right}]
                python_task:
                  function: "steps:check_sum"
                  parameters:
                    left: "{{tasks.left.values.n}}"
                    right: "{{tasks.right.values.n}}"
                    expected: 4
            """,
        )
    )
    run = workspace.jobs.run_now("diamond")
    assert run.state == "SUCCESS" and run.error is None, run
    assert states(run) == dict.fromkeys(["root", "left", "right", "join"], "SUCCESS")
    assert run.task("root").task_values == {"n": 1}
    assert run.task("left").task_values == {"n": 2} and run.task("left").output == {"result": {"n": 1}}
    assert run.task("join").task_values == {"total": 4}
    assert run.trigger == "manual" and run.run_as == "admin" and run.started_by == "admin"
    assert run.parameters == {"start": "1"} and run.repair_count == 0
    assert run.code_version == {} or "mlflow.source.git.commit" in run.code_version
    root = run.task("root")
    assert root.attempt == 1 and root.exit_code == 0
    assert root.log_dir == str(
        workspace.folder.resolve() / "jobs" / "runs" / str(run.run_id) / "root" / "attempt-1"
    )
    assert root.start_time is not None and root.end_time is not None and root.duration_seconds is not None
    assert [r.run_id for r in workspace.jobs.runs("diamond")] == [run.run_id]
    assert workspace.jobs.get_run(run.run_id) == run


def test_parameters_and_run_values_resolve_and_unknown_parameters_are_refused(
    sqlite_workspace: Workspace, project: Path
) -> None:
    ws = sqlite_workspace
    ws.jobs.create(
        job_file(
            project,
            """
            name: params
            parameters: [{name: who, default: world}, {name: day, default: "{{job.start_time.iso_date}}"}]
            tasks:
              - task_key: t
                python_task:
                  function: "steps:put"
                  parameters:
                    key: greeting
                    value: "hello {{job.parameters.who}} run {{job.run_id}} #{{task.execution_count}}"
            """,
        )
    )
    run = ws.jobs.run_now("params", {"who": "alice"})
    assert run.task("t").task_values == {"greeting": f"hello alice run {run.run_id} #1"}
    assert run.parameters["day"] == run.created_at.date().isoformat()
    literal = ws.jobs.run_now("params", {"who": "{{tasks.t.values.x}}", "day": "monday"})
    assert literal.parameters == {"who": "{{tasks.t.values.x}}", "day": "monday"}
    greeting = "hello {{tasks.t.values.x}} run " + f"{literal.run_id} #1"
    assert literal.task("t").task_values == {"greeting": greeting}  # given values are not resolved
    with pytest.raises(
        InvalidParameter, match=r"Job 'params' has no parameter 'whom' \(parameters: day, who\)"
    ):
        ws.jobs.run_now("params", {"whom": "x"})


def test_a_sql_task_reads_workspace_tables_and_keeps_its_first_rows(
    sqlite_workspace: Workspace, project: Path
) -> None:
    ws = sqlite_workspace
    ws.schemas.create("dev.shop")
    ws.tables.create("dev.shop.orders", data=pa.table({"id": [1, 2, 3], "amount": [5.0, 7.5, 2.5]}))
    ws.jobs.create(
        job_file(
            project,
            """
            name: report
            parameters: [{name: floor, default: 3}]
            tasks:
              - task_key: total
                sql_task:
                  query: >-
                    SELECT count(*) AS n, sum(amount) AS s FROM dev.shop.orders
                    WHERE amount > {{job.parameters.floor}}
              - task_key: publish
                depends_on: [{task_key: total}]
                python_task: {function: "steps:write_table", parameters: {table: dev.shop.orders}}
            """,
        )
    )
    run = ws.jobs.run_now("report")
    assert run.state == "SUCCESS", run
    assert run.task("total").output == {
        "columns": ["n", "s"],
        "rows": [{"n": 2, "s": 12.5}],
        "num_rows": 1,
        "truncated": False,
    }
    # Lineage: the SQL task read version 0, the python task wrote version 1.
    read = ws.lineage.downstream("dev.shop.orders", version=0)
    assert f"report#{run.run_id}/total" in [n.ref.name for n in read.find("job_run")]
    made = ws.lineage.upstream("dev.shop.orders", version=1)
    assert f"report#{run.run_id}/publish" in [n.ref.name for n in made.find("job_run")]
    task = ws.lineage.downstream(f"job_run:report#{run.run_id}/publish")
    assert [(n.ref.name, n.ref.version) for n in task.find("table")] == [("dev.shop.orders", 1)]
    assert task.root.properties["task_key"] == "publish" and task.root.properties["principal"] == "admin"


def test_a_condition_task_picks_the_branch_that_runs(sqlite_workspace: Workspace, project: Path) -> None:
    ws = sqlite_workspace
    ws.jobs.create(
        job_file(
            project,
            """
            name: gate
            tasks:
              - task_key: score
                python_task: {function: "steps:put", parameters: {key: auc, value: 0.91}}
              - task_key: good_enough
                depends_on: [{task_key: score}]
                condition_task: {op: GREATER_THAN_OR_EQUAL, left: "{{tasks.score.values.auc}}", right: "0.9"}
              - task_key: deploy
                depends_on: [{task_key: good_enough, outcome: "true"}]
                python_task: {function: "steps:noop"}
              - task_key: alert
                depends_on: [{task_key: good_enough, outcome: "false"}]
                python_task: {function: "steps:noop"}
              - task_key: text
                condition_task: {op: GREATER_THAN, left: "10", right: "9"}
              - task_key: words
                condition_task: {op: LESS_THAN, left: "apple", right: "banana"}
            """,
        )
    )
    run = ws.jobs.run_now("gate")
    assert run.state == "SUCCESS"
    assert states(run) == {
        "score": "SUCCESS",
        "good_enough": "SUCCESS",
        "deploy": "SUCCESS",
        "alert": "SKIPPED",
        "text": "SUCCESS",
        "words": "SUCCESS",
    }
    gate = run.task("good_enough")
    assert gate.condition_outcome == "true" and gate.log_dir is None  # no process
    assert gate.output == {"left": "0.91", "op": "GREATER_THAN_OR_EQUAL", "right": "0.9", "outcome": "true"}
    assert run.task("text").condition_outcome == "true"  # 10 > 9 as numbers, not as text
    assert run.task("words").condition_outcome == "true"


# Expected state of a dependant, by run_if, when its dependencies are (ok, bad), (bad,), (ok,).
RUN_IF_TABLE = {
    "ALL_SUCCESS": ("UPSTREAM_FAILED", "UPSTREAM_FAILED", "SUCCESS"),
    "AT_LEAST_ONE_SUCCESS": ("SUCCESS", "UPSTREAM_FAILED", "SUCCESS"),
    "NONE_FAILED": ("UPSTREAM_FAILED", "UPSTREAM_FAILED", "SUCCESS"),
    "ALL_DONE": ("SUCCESS", "SUCCESS", "SUCCESS"),
    "AT_LEAST_ONE_FAILED": ("SUCCESS", "SUCCESS", "SKIPPED"),
    "ALL_FAILED": ("SKIPPED", "SUCCESS", "SKIPPED"),
}


def test_run_if_decides_which_dependants_of_a_failed_task_run(
    sqlite_workspace: Workspace, project: Path
) -> None:
    deps = {"mixed": ["ok", "bad"], "failed": ["bad"], "passed": ["ok"]}
    lines = [
        "name: run-if",
        "tasks:",
        "  - {task_key: ok, python_task: {function: 'steps:noop'}}",
        "  - {task_key: bad, python_task: {function: 'steps:fail'}}",
    ]
    for rule in RUN_IFS:
        for case, upstream in deps.items():
            depends = ", ".join(f"{{task_key: {u}}}" for u in upstream)
            lines.append(
                f"  - {{task_key: {rule}_{case}, run_if: {rule}, depends_on: [{depends}], "
                "python_task: {function: 'steps:noop'}}"
            )
    # A dependant of an UPSTREAM_FAILED task is UPSTREAM_FAILED in turn.
    lines.append(
        "  - {task_key: after, depends_on: [{task_key: ALL_SUCCESS_mixed}], "
        "python_task: {function: 'steps:noop'}}"
    )
    sqlite_workspace.jobs.create(job_file(project, "\n".join(lines)))
    run = sqlite_workspace.jobs.run_now("run-if")
    got = states(run)
    expected = {f"{rule}_{case}": RUN_IF_TABLE[rule][i] for rule in RUN_IFS for i, case in enumerate(deps)}
    assert {k: got[k] for k in expected} == expected
    assert (got["ok"], got["bad"], got["after"]) == ("SUCCESS", "FAILED", "UPSTREAM_FAILED")
    assert run.state == "FAILED" and run.error == "task 'bad' FAILED: ValueError: boom"


@pytest.mark.parametrize("rule", RUN_IFS)
def test_run_if_with_a_skipped_dependency(rule: str) -> None:
    task = Task.model_validate(
        {
            "task_key": "t",
            "run_if": rule,
            "depends_on": [{"task_key": "c", "outcome": "true"}],
            "python_task": {"function": "m:f"},
        }
    )
    # The condition took the other branch: the dependency counts as skipped.
    decision = run_if_decision(task, {"c": ("SUCCESS", "false")})
    assert decision == ("RUN" if rule == "ALL_DONE" else "SKIPPED")


def test_a_failing_task_is_retried_until_it_succeeds(
    sqlite_workspace: Workspace, project: Path, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    counter = tmp_path / "count"
    ws.jobs.create(
        job_file(
            project,
            f"""
            name: flaky
            tasks:
              - task_key: t
                max_retries: 3
                min_retry_interval_millis: 200
                python_task: {{function: "steps:flaky", parameters: {{counter: "{counter}", failures: 2}}}}
            """,
        )
    )
    run = ws.jobs.run_now("flaky")
    assert run.state == "SUCCESS" and run.task("t").attempt == 3
    assert run.task("t").task_values == {"attempts": 3}
    attempts = ws.jobs.attempts(run.run_id, "t")
    assert [(a.attempt, a.state) for a in attempts] == [(1, "FAILED"), (2, "FAILED"), (3, "SUCCESS")]
    assert attempts[0].error == "RuntimeError: failure 1 of 2"
    assert attempts[0].end_time and attempts[1].start_time
    assert (attempts[1].start_time - attempts[0].end_time).total_seconds() >= 0.2
    assert ws.jobs.logs(run.run_id, "t", attempt=1)["stderr"].count("RuntimeError: failure 1 of 2") >= 1


def test_a_task_killed_with_sigkill_fails_and_is_retried(
    sqlite_workspace: Workspace, project: Path, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    pid_file = tmp_path / "task.pid"
    ws.jobs.create(
        job_file(
            project,
            f"""
            name: killed
            tasks:
              - task_key: t
                max_retries: 1
                python_task:
                  function: "steps:pid_then_sleep"
                  parameters: {{pid_file: "{pid_file}", attempt: "{{{{task.execution_count}}}}"}}
            """,
        )
    )
    killer = threading.Thread(target=lambda: os.kill(wait_for_pid(pid_file), signal.SIGKILL))
    killer.start()
    run = ws.jobs.run_now("killed")
    killer.join()
    attempts = ws.jobs.attempts(run.run_id, "t")
    assert [(a.state, a.exit_code) for a in attempts] == [("FAILED", -9), ("SUCCESS", 0)]
    assert attempts[0].error == "the task process was killed by SIGKILL"
    assert run.state == "SUCCESS"


def test_a_task_past_its_timeout_is_killed_with_its_children(
    sqlite_workspace: Workspace, project: Path, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    pid_file = tmp_path / "grandchild.pid"
    ws.jobs.create(
        job_file(
            project,
            f"""
            name: slow
            tasks:
              - task_key: t
                timeout_seconds: 1
                max_retries: 2
                python_task: {{function: "steps:spawn_and_sleep", parameters: {{pid_file: "{pid_file}"}}}}
              - task_key: next
                depends_on: [{{task_key: t}}]
                python_task: {{function: "steps:noop"}}
            """,
        )
    )
    started = time.monotonic()
    run = ws.jobs.run_now("slow")
    assert time.monotonic() - started < 10
    assert states(run) == {"t": "TIMEDOUT", "next": "UPSTREAM_FAILED"}
    assert run.task("t").attempt == 1  # retry_on_timeout is off
    assert run.state == "FAILED" and run.error == "task 't' TIMEDOUT: timed out after 1 s"
    grandchild = wait_for_pid(pid_file, 0)
    deadline = time.monotonic() + 2
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(grandchild)


def test_the_job_timeout_stops_the_run(sqlite_workspace: Workspace, project: Path) -> None:
    ws = sqlite_workspace
    ws.jobs.create(
        job_file(
            project,
            """
            name: bounded
            timeout_seconds: 1
            tasks:
              - {task_key: t, python_task: {function: "steps:sleep", parameters: {seconds: 30}}}
              - {task_key: later, depends_on: [{task_key: t}], python_task: {function: "steps:noop"}}
            """,
        )
    )
    run = ws.jobs.run_now("bounded")
    assert run.state == "TIMEDOUT" and run.error == "the job timed out after 1 s"
    assert states(run) == {"t": "TIMEDOUT", "later": "CANCELED"}  # never started


def test_a_run_canceled_from_another_thread_stops_its_tasks(
    sqlite_workspace: Workspace, project: Path
) -> None:
    ws = sqlite_workspace
    ws.jobs.create(
        job_file(
            project,
            """
            name: long
            tasks:
              - {task_key: t, python_task: {function: "steps:sleep", parameters: {seconds: 30}}}
              - {task_key: later, depends_on: [{task_key: t}], python_task: {function: "steps:noop"}}
            """,
        )
    )
    started = ws.jobs.run_now("long", wait=False)
    assert started.state in ("PENDING", "QUEUED", "RUNNING")
    deadline = time.monotonic() + 10
    while ws.jobs.get_run(started.run_id).task("t").state != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    other = Workspace.open(ws.folder)  # another handle, as another process would have
    other.jobs.cancel(started.run_id)
    while ws.jobs.get_run(started.run_id).state == "RUNNING":
        assert time.monotonic() < deadline + 5
        time.sleep(0.05)
    run = ws.jobs.get_run(started.run_id)
    assert run.state == "CANCELED" and run.cancel_requested
    assert states(run) == {"t": "CANCELED", "later": "CANCELED"}
    with pytest.raises(InvalidRunState, match="is CANCELED and cannot become RUNNING") as wrong:
        from lakestack.jobs.store import RunStore

        RunStore(ws._core.metastore).set_task_state(run.task("t").id, "RUNNING")
    assert wrong.value.code == "INVALID_STATE"


def test_repair_reruns_what_failed_and_keeps_what_succeeded(
    sqlite_workspace: Workspace, project: Path, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    flag = tmp_path / "ready"
    ws.jobs.create(
        job_file(
            project,
            f"""
            name: repairable
            tasks:
              - task_key: a
                python_task: {{function: "steps:add_one", parameters: {{n: 10}}}}
              - task_key: b
                depends_on: [{{task_key: a}}]
                python_task: {{function: "steps:needs_file", parameters: {{path: "{flag}"}}}}
              - task_key: c
                depends_on: [{{task_key: b}}]
                python_task: {{function: "steps:add_one", parameters: {{n: "{{{{tasks.a.values.n}}}}"}}}}
            """,
        )
    )
    run = ws.jobs.run_now("repairable")
    assert states(run) == {"a": "SUCCESS", "b": "FAILED", "c": "UPSTREAM_FAILED"}
    flag.write_text("")
    repaired = ws.jobs.repair(run.run_id)
    assert repaired.run_id == run.run_id and repaired.state == "SUCCESS" and repaired.repair_count == 1
    assert states(repaired) == dict.fromkeys("abc", "SUCCESS")
    assert repaired.task("a").attempt == 1 and repaired.task("a").id == run.task("a").id  # kept
    assert (repaired.task("b").attempt, repaired.task("c").attempt) == (2, 2)
    assert repaired.task("c").task_values == {"n": 12}  # read a's kept value
    with pytest.raises(InvalidRunState, match="succeeded: nothing to repair"):
        ws.jobs.repair(run.run_id)


def test_a_malformed_spec_is_rejected_before_anything_runs(
    sqlite_workspace: Workspace, project: Path
) -> None:
    ws = sqlite_workspace
    path = job_file(
        project,
        """
        name: broken
        tasks:
          - task_key: a
            python_task: {function: "steps:noop"}
          - task_key: b
            depends_on: [{task_key: trian}]
            python_task: {function: "steps:noop"}
        """,
    )
    with pytest.raises(InvalidJobSpec) as bad:
        ws.jobs.create(path)
    assert bad.value.problems == (
        f"{path}:7:19: tasks[1].depends_on[0].task_key: no task 'trian' in this job (tasks: a, b)",
    )
    assert ws.jobs.list() == []
    assert not (ws.folder / "jobs").exists()


def test_job_grants_govern_who_sees_runs_and_repairs(workspace: Workspace, project: Path) -> None:
    workspace.principals.create("alice")
    workspace.principals.create("bob")
    workspace.jobs.create(
        job_file(project, "name: nightly\ntasks: [{task_key: t, python_task: {function: 'steps:noop'}}]\n")
    )
    alice = workspace.as_principal("alice")
    with pytest.raises(PrivilegeMissing, match="lacks CAN_VIEW on job 'nightly'"):
        alice.jobs.get("nightly")
    assert alice.jobs.list() == []
    workspace.grants.grant("CAN_VIEW", "job", "nightly", "alice")
    assert [j.name for j in alice.jobs.list()] == ["nightly"]
    assert [(g.principal, g.privilege) for g in alice.grants.show("job", "nightly")] == [
        ("alice", "CAN_VIEW")
    ]
    with pytest.raises(PrivilegeMissing, match="lacks CAN_MANAGE_RUN on job 'nightly'") as denied:
        alice.jobs.run_now("nightly")
    assert "lakestack grants grant CAN_MANAGE_RUN job nightly alice" in denied.value.message
    workspace.grants.grant("CAN_MANAGE_RUN", "job", "nightly", "alice")
    run = alice.jobs.run_now("nightly")
    assert run.state == "SUCCESS" and run.run_as == "admin" and run.started_by == "alice"
    with pytest.raises(PrivilegeMissing, match="lacks MANAGE on job 'nightly'"):
        alice.jobs.delete("nightly")
    with pytest.raises(InvalidParameter, match="SELECT does not apply to a job"):
        workspace.grants.grant("SELECT", "job", "nightly", "bob")

    bob = workspace.as_principal("bob")
    with pytest.raises(PrivilegeMissing, match="CAN_VIEW"):
        bob.jobs.get_run(run.run_id)
    mine = bob.jobs.create(
        job_file(
            project, "name: bobs\ntasks: [{task_key: t, python_task: {function: 'steps:whoami'}}]\n", "b.yml"
        )
    )
    bobs_run = bob.jobs.run_now("bobs")
    assert mine.owner == "bob" and bobs_run.run_as == "bob"
    assert bobs_run.task("t").task_values == {"principal": "bob"}  # task code acts as the run's principal
    events = workspace.audit.list(action="jobs.", denied_only=True)
    assert {(e.principal, e.action, e.privilege) for e in events} >= {
        ("alice", "jobs.get", "CAN_VIEW"),
        ("alice", "jobs.run", "CAN_MANAGE_RUN"),
        ("bob", "jobs.get_run", "CAN_VIEW"),
    }
    workspace.jobs.delete("bobs")
    assert [j.name for j in workspace.jobs.list()] == ["nightly"]


def test_a_run_job_task_runs_another_job_and_waits_for_it(sqlite_workspace: Workspace, project: Path) -> None:
    ws = sqlite_workspace
    ws.jobs.create(
        job_file(
            project,
            """
            name: child
            parameters: [{name: n, default: 0}, {name: fail, default: "no"}]
            tasks:
              - task_key: t
                python_task: {function: "steps:add_one", parameters: {n: "{{job.parameters.n}}"}}
              - task_key: check
                depends_on: [{task_key: t}]
                condition_task: {op: EQUAL_TO, left: "{{job.parameters.fail}}", right: "yes"}
              - task_key: boom
                depends_on: [{task_key: check, outcome: "true"}]
                python_task: {function: "steps:fail"}
            """,
            "child.yml",
        )
    )
    ws.jobs.create(
        job_file(
            project,
            """
            name: parent
            parameters: [{name: fail, default: "no"}]
            tasks:
              - task_key: start
                run_job_task: {job_name: child, job_parameters: {n: "41", fail: "{{job.parameters.fail}}"}}
            """,
            "parent.yml",
        )
    )
    run = ws.jobs.run_now("parent")
    assert run.state == "SUCCESS", run
    output = run.task("start").output or {}
    child_id = output["run_id"]
    child = ws.jobs.get_run(child_id)
    assert child.state == "SUCCESS" and child.task("t").task_values == {"n": 42}
    assert child.parameters == {"n": "41", "fail": "no"} and child.run_as == "admin"

    failed = ws.jobs.run_now("parent", {"fail": "yes"})
    assert failed.state == "FAILED"
    error = failed.task("start").error
    child_id = (failed.task("start").output or {})["run_id"]
    assert error == f"run {child_id} of job 'child' FAILED: task 'boom' FAILED: ValueError: boom"


def _wait_state(ws: Workspace, run_id: int, wanted: set[str], timeout: float = 15) -> RunInfo:
    deadline = time.monotonic() + timeout
    while (run := ws.jobs.get_run(run_id)).state not in wanted:
        assert time.monotonic() < deadline, f"run {run_id} stayed {run.state}"
        time.sleep(0.05)
    return run


def test_max_concurrent_runs_queues_or_skips_extra_runs(sqlite_workspace: Workspace, project: Path) -> None:
    ws = sqlite_workspace
    for name, queue in (("queued", "true"), ("skipping", "false")):
        ws.jobs.create(
            job_file(
                project,
                f"""
                name: {name}
                max_concurrent_runs: 1
                queue: {{enabled: {queue}}}
                tasks: [{{task_key: t, python_task: {{function: "steps:sleep", parameters: {{seconds: 1}}}}}}]
                """,
                f"{name}.yml",
            )
        )
    first = ws.jobs.run_now("queued", wait=False)
    _wait_state(ws, first.run_id, {"RUNNING"})
    second = ws.jobs.run_now("queued", wait=False)
    third = ws.jobs.run_now("queued", wait=False)
    assert _wait_state(ws, second.run_id, {"QUEUED"}).task("t").state == "PENDING"
    _wait_state(ws, third.run_id, {"QUEUED"})
    canceled = ws.jobs.cancel(third.run_id)  # a queued run is canceled at once
    assert canceled.state == "CANCELED" and canceled.task("t").state == "CANCELED"
    done = [_wait_state(ws, r.run_id, {"SUCCESS"}) for r in (first, second)]
    assert done[1].start_time is not None and done[0].end_time is not None
    assert done[1].start_time >= done[0].end_time  # one at a time

    running = ws.jobs.run_now("skipping", wait=False)
    _wait_state(ws, running.run_id, {"RUNNING"})
    skipped = ws.jobs.run_now("skipping")
    assert skipped.state == "CANCELED" and skipped.start_time is None
    assert skipped.error == (
        "skipped: 1 run(s) of the job already running (max_concurrent_runs) and its queue is disabled"
    )
    _wait_state(ws, running.run_id, {"SUCCESS"})


def test_a_slot_claim_waits_for_the_claim_in_progress_and_then_finds_the_slot_taken(
    workspace: Workspace, project: Path
) -> None:
    workspace.jobs.create(
        job_file(
            project,
            """
            name: one at a time
            max_concurrent_runs: 1
            tasks: [{task_key: t, python_task: {function: "steps:noop"}}]
            """,
        )
    )
    # Two runs nobody drives (`true` exits at once), both waiting in the queue.
    first, second = (workspace.jobs.run_now("one at a time", detach=["true"]).run_id for _ in range(2))
    store = workspace.jobs._store
    for run_id in (first, second):
        store.set_run_state(run_id, "QUEUED")
    claimed: list[tuple[bool, str]] = []
    with workspace._core.metastore.session() as session:
        # Runner A, in the middle of its claim: it holds the job's lock and starts its run...
        session.execute(update(Job).where(Job.name == "one at a time").values(id=Job.id))
        row = session.get(JobRun, first)
        assert row is not None
        row.state = "RUNNING"
        session.flush()
        # ...while runner B claims the one slot too: B must wait for A, not count around it.
        other = threading.Thread(target=lambda: claimed.append(store.claim_slot(second, 1)))
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive(), f"B claimed past A's lock: {claimed}"
    other.join(timeout=30)
    assert claimed == [(False, "QUEUED")], "two runs held the one slot at once"


def test_a_script_task_gets_its_argv_and_a_sql_file_task_runs_its_file(
    sqlite_workspace: Workspace, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = sqlite_workspace
    monkeypatch.setenv("LAKESTACK_RAY_ADDRESS", "127.0.0.1:1")  # no Ray cluster there
    (project / "scripts").mkdir()
    (project / "scripts" / "train.py").write_text(
        "import sys\n"
        "from lakestack.jobs import task_values\n"
        "import steps  # the job's folder is importable from a script too\n"
        "task_values.set('argv', sys.argv[1:])\n"
        "if '--fail' in sys.argv:\n"
        "    sys.exit(3)\n"
    )
    (project / "sql").mkdir()
    (project / "sql" / "one.sql").write_text("SELECT {{job.run_id}} AS run_id, 'x' AS label\n")
    ws.jobs.create(
        job_file(
            project,
            """
            name: scripts
            tasks:
              - task_key: ok
                python_task: {script: scripts/train.py, args: ["--run", "{{job.run_id}}"]}
              - task_key: bad
                python_task: {script: scripts/train.py, args: ["--fail"]}
              - task_key: query
                sql_task: {file: sql/one.sql}
              - task_key: elsewhere
                compute: ray
                python_task: {function: "steps:noop"}
            """,
        )
    )
    run = ws.jobs.run_now("scripts")
    elsewhere = run.task("elsewhere").error
    assert elsewhere is not None and elsewhere.startswith("Cannot reach the Ray cluster at '127.0.0.1:1' (")
    assert run.task("ok").state == "SUCCESS"
    assert run.task("ok").task_values == {"argv": ["--run", str(run.run_id)]}
    bad = run.task("bad")
    assert (bad.state, bad.exit_code, bad.error) == ("FAILED", 3, "the task exited with code 3")
    assert run.task("query").output == {
        "columns": ["run_id", "label"],
        "rows": [{"run_id": run.run_id, "label": "x"}],
        "num_rows": 1,
        "truncated": False,
    }


def test_ctrl_c_in_a_waiting_caller_cancels_the_run_and_kills_its_tasks(
    sqlite_workspace: Workspace, project: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    ws = sqlite_workspace
    pid_file = tmp_path / "task.pid"
    ws.jobs.create(
        job_file(
            project,
            f"""
            name: interrupted
            tasks:
              - task_key: t
                python_task:
                  function: "steps:pid_then_sleep"
                  parameters: {{pid_file: "{pid_file}", attempt: 1}}
              - {{task_key: later, depends_on: [{{task_key: t}}], python_task: {{function: "steps:noop"}}}}
            """,
        )
    )
    caller = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from lakestack import Workspace; "
            f"Workspace.open({str(ws.folder)!r}).jobs.run_now('interrupted')",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    task_pid = wait_for_pid(pid_file, 30)
    caller.send_signal(signal.SIGINT)
    _, stderr = caller.communicate(timeout=30)
    assert "KeyboardInterrupt" in stderr
    run = ws.jobs.runs("interrupted")[0]
    assert (run.state, run.error) == ("CANCELED", "interrupted (Ctrl-C)")
    assert states(run) == {"t": "CANCELED", "later": "CANCELED"}
    assert not alive(task_pid)


def test_a_killed_runner_leaves_no_task_running(
    sqlite_workspace: Workspace, project: Path, tmp_path: Path
) -> None:
    import subprocess
    import sys

    ws = sqlite_workspace
    pid_file = tmp_path / "task.pid"
    ws.jobs.create(
        job_file(
            project,
            f"""
            name: orphan
            tasks:
              - task_key: t
                python_task:
                  function: "steps:pid_then_sleep"
                  parameters: {{pid_file: "{pid_file}", attempt: 1}}
            """,
        )
    )
    runner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from lakestack import Workspace; Workspace.open({str(ws.folder)!r}).jobs.run_now('orphan')",
        ]
    )
    task_pid = wait_for_pid(pid_file, 30)
    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 5
    while alive(task_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(task_pid), "the task outlived its runner"
