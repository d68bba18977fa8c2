"""The scheduler with real runs: one run per tick across racing schedulers and restarts, periodic
and table-update triggers, and runs whose runner was killed (failed, or retried per policy)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import select
from tests.integration.jobs_project import alive, make_project, wait_for_pid

from lakestack import Workspace
from lakestack.catalog.models import AuditEvent, JobRun, JobTrigger
from lakestack.cli.jobs import drive_command
from lakestack.jobs.cron import QuartzCron
from lakestack.jobs.scheduler import Event
from lakestack.jobs.states import JOB_TERMINAL
from lakestack.jobs.store import RunInfo


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


def create(ws: Workspace, project: Path, text: str) -> None:
    path = project / "job.yml"
    path.write_text(textwrap.dedent(text))
    ws.jobs.create(path)


def finished(ws: Workspace, run_id: int, timeout: float = 30) -> RunInfo:
    deadline = time.monotonic() + timeout
    while (run := ws.jobs.get_run(run_id)).state not in JOB_TERMINAL:
        assert time.monotonic() < deadline, f"run {run_id} still {run.state}"
        time.sleep(0.05)
    return run


def audit_rows(ws: Workspace) -> int:
    with ws._core.metastore.session() as session:
        return len(session.scalars(select(AuditEvent.id)).all())


def test_a_tick_starts_exactly_one_run_however_many_schedulers_race(
    workspace: Workspace, project: Path
) -> None:
    create(
        workspace,
        project,
        """
        name: nightly
        schedule: {quartz_cron_expression: "0 0 2 * * ?", timezone_id: Europe/Paris}
        tasks: [{task_key: t, python_task: {function: "steps:noop"}}]
        """,
    )
    job = workspace.jobs.get("nightly")
    tick = QuartzCron("0 0 2 * * ?", "Europe/Paris").next(job.updated_at)
    assert tick is not None
    schedulers = [workspace.scheduler() for _ in range(4)]
    assert schedulers[0].run_once(tick - timedelta(seconds=1)) == []  # not due yet

    now = tick + timedelta(minutes=3)
    events: list[Event] = []
    barrier = threading.Barrier(len(schedulers))

    def race(index: int) -> None:
        barrier.wait()
        events.extend(schedulers[index].run_once(now))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(schedulers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [(e.action, e.job_name) for e in events] == [("fired", "nightly")]
    run = finished(workspace, events[0].run_id)
    assert (run.state, run.trigger) == ("SUCCESS", "schedule")
    assert [r.run_id for r in workspace.jobs.runs("nightly")] == [run.run_id]
    # Restarted: a fresh scheduler finds the tick claimed; the next day's tick fires.
    assert workspace.scheduler().run_once(now) == []
    later = workspace.scheduler().run_once(now + timedelta(days=1))
    assert [e.action for e in later] == ["fired"]
    finished(workspace, later[0].run_id)


def test_paused_schedules_do_not_fire_and_periodic_triggers_do(
    sqlite_workspace: Workspace, project: Path
) -> None:
    ws = sqlite_workspace
    create(
        ws,
        project,
        """
        name: hourly
        schedule: {quartz_cron_expression: "0 * * * * ?", pause_status: PAUSED}
        trigger: {periodic: {interval: 1, unit: HOURS}}
        tasks: [{task_key: t, python_task: {function: "steps:noop"}}]
        """,
    )
    changed = ws.jobs.get("hourly").updated_at
    scheduler = ws.scheduler()
    audited = audit_rows(ws)
    for minutes in (10, 30, 59):  # passes with nothing due write nothing, not even audit rows
        assert scheduler.run_once(changed + timedelta(minutes=minutes)) == []
    assert audit_rows(ws) == audited
    fired = scheduler.run_once(changed + timedelta(minutes=61))
    assert [(e.action, e.detail.split()[0]) for e in fired] == [("fired", "periodic")]
    assert scheduler.run_once(changed + timedelta(minutes=62)) == []
    assert finished(ws, fired[0].run_id).trigger == "periodic"


def test_a_table_update_trigger_fires_once_per_new_version(
    sqlite_workspace: Workspace, project: Path
) -> None:
    ws = sqlite_workspace
    ws.schemas.create("dev.s")
    ws.tables.create("dev.s.events", data=pa.table({"id": [1]}))
    create(
        ws,
        project,
        """
        name: on new events
        trigger: {table_update: {table_names: [dev.s.events]}}
        tasks: [{task_key: t, python_task: {function: "steps:noop"}}]
        """,
    )
    scheduler = ws.scheduler(table_poll_seconds=0)
    assert scheduler.run_once() == []  # written before the trigger was set
    ws.tables.write("dev.s.events", pa.table({"id": [2]}))
    fired = scheduler.run_once()
    assert [e.action for e in fired] == ["fired"]
    run = finished(ws, fired[0].run_id)
    assert (run.state, run.trigger) == ("SUCCESS", "table_update")
    assert ws.scheduler(table_poll_seconds=0).run_once() == []  # the same version, another scheduler
    ws.tables.write("dev.s.events", pa.table({"id": [3]}))
    again = scheduler.run_once()
    assert [e.action for e in again] == ["fired"]
    finished(ws, again[0].run_id)
    with ws._core.metastore.session() as session:
        seen = [t.detail["versions"] for t in session.scalars(select(JobTrigger).order_by(JobTrigger.id))]
    assert seen == [{"dev.s.events": 1}, {"dev.s.events": 2}]


def start_detached_run(ws: Workspace, project: Path, max_retries: int) -> tuple[int, int]:
    """A detached run whose task sleeps on its first attempt; (run id, the task's pid)."""
    create(
        ws,
        project,
        f"""
        name: long
        email_notifications: {{on_failure: [oncall@example.com]}}
        parameters: [{{name: pid_file, default: "{project / "task.pid"}"}}]
        tasks:
          - task_key: work
            max_retries: {max_retries}
            python_task:
              function: "steps:pid_then_sleep"
              parameters:
                pid_file: "{{{{job.parameters.pid_file}}}}"
                attempt: "{{{{task.execution_count}}}}"
        """,
    )
    run = ws.jobs.run_now("long", detach=drive_command(ws.folder))
    return run.run_id, wait_for_pid(project / "task.pid", timeout=30)


@pytest.mark.parametrize("max_retries", [0, 1])
def test_a_run_whose_runner_was_killed_is_failed_or_retried(
    sqlite_workspace: Workspace, project: Path, max_retries: int
) -> None:
    ws = sqlite_workspace
    run_id, task_pid = start_detached_run(ws, project, max_retries)
    runner = ws.jobs.get_run(run_id).runner
    assert runner is not None
    os.kill(int(runner.rpartition(":")[2]), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(task_pid):  # the task dies with its runner
        assert time.monotonic() < deadline, "the task outlived its runner"
        time.sleep(0.05)
    assert ws.jobs.get_run(run_id).state == "RUNNING"  # nobody has noticed yet

    events = ws.scheduler().run_once()
    assert [(e.action, e.run_id) for e in events] == [("failed" if max_retries == 0 else "repaired", run_id)]
    run = finished(ws, run_id)
    attempts = ws.jobs.attempts(run_id, "work")
    assert attempts[0].state == "FAILED" and f"the runner {runner} stopped" in str(attempts[0].error)
    if max_retries == 0:
        assert (run.state, len(attempts)) == ("FAILED", 1)
        assert f"the runner {runner} stopped" in str(run.error)
        # The scheduler sent the on_failure notifications the dead runner could not send (this
        # workspace has no SMTP server configured: the e-mail's delivery says so).
        assert [(n.event, n.channel, n.destination) for n in run.notifications] == [
            ("on_failure", "email", "oncall@example.com")
        ]
    else:
        assert (run.state, run.repair_count, [a.state for a in attempts]) == (
            "SUCCESS",
            1,
            ["FAILED", "SUCCESS"],
        )
    assert ws.scheduler().run_once() == []


def test_the_scheduler_killed_mid_run_and_restarted_starts_no_duplicate(
    sqlite_workspace: Workspace, project: Path
) -> None:
    ws = sqlite_workspace
    create(
        ws,
        project,
        """
        name: every two seconds
        max_concurrent_runs: 5
        schedule: {quartz_cron_expression: "*/2 * * * * ?"}
        tasks: [{task_key: t, python_task: {function: "steps:sleep", parameters: {seconds: 3}}}]
        """,
    )
    command = [sys.executable, "-m", "lakestack.cli.main", "-w", str(ws.folder), "scheduler", "--poll", "0.2"]

    def runs() -> list[RunInfo]:
        return ws.jobs.runs("every two seconds", limit=100)

    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not any(r.state == "RUNNING" for r in runs()):
        assert time.monotonic() < deadline, "no run started"
        time.sleep(0.1)
    first.kill()  # SIGKILL, in the middle of a run
    first.wait()
    before = len(runs())
    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(runs()) < before + 2:  # the restarted scheduler fires the ticks that follow
        assert time.monotonic() < deadline, "the restarted scheduler fired nothing"
        time.sleep(0.1)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=10) == 0
    with ws._core.metastore.session() as session:
        ticks = session.execute(select(JobTrigger.tick, JobTrigger.run_id)).all()
        scheduled = session.scalars(select(JobRun.id).where(JobRun.trigger == "schedule")).all()
    assert len(ticks) >= 3
    assert max(Counter(tick for tick, _ in ticks).values()) == 1
    assert sorted(run_id for _, run_id in ticks) == sorted(scheduled)
    # Runs live in processes of their own: the one running when the scheduler died finished.
    for run in runs():
        assert finished(ws, run.run_id).state == "SUCCESS"
