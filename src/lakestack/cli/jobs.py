"""`lakestack jobs`: create jobs from YAML, run them with a live task table, watch, cancel, repair."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from lakestack.cli.context import STATE, bad, workspace
from lakestack.cli.output import JsonFlag, console, emit, errors, ok, print_json, print_rows
from lakestack.jobs.states import JOB_TERMINAL
from lakestack.jobs.store import RunInfo

app = typer.Typer(
    help="Jobs: DAGs of python, SQL and condition tasks with task values, retries and timeouts.",
    no_args_is_help=True,
)

#: Exit code of `run`/`repair` with --wait when the run ends FAILED, TIMEDOUT or CANCELED.
RUN_NOT_SUCCESSFUL = 8
REFRESH_SECONDS = 0.25
_STYLE = {
    "SUCCESS": "green",
    "FAILED": "red",
    "TIMEDOUT": "red",
    "UPSTREAM_FAILED": "red",
    "CANCELED": "yellow",
    "SKIPPED": "dim",
    "RUNNING": "cyan",
}
RUN_COLUMNS = [
    "run_id",
    "state",
    "trigger",
    "started_by",
    "start_time",
    "duration_s",
    "repair_count",
    "error",
]


def _parameters(values: list[str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values or []:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise bad(f"--param takes KEY=VALUE, got {value!r}")
        found[key.strip()] = text
    return found


def _state(state: str) -> str:
    style = _STYLE.get(state)
    return f"[{style}]{state}[/{style}]" if style else state


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def task_table(run: RunInfo) -> Table:
    """The tasks of a run as a table: state, attempt, duration, and values or error."""
    table = Table(
        title=f"run {run.run_id} of {run.job_name}: {_state(run.state)}",
        title_justify="left",
        header_style="bold",
    )
    for column in ("task", "state", "attempt", "seconds", "values / error"):
        table.add_column(column)
    for task in run.tasks:
        detail = task.error or (", ".join(f"{k}={v!r}" for k, v in task.task_values.items()) or "")
        if task.condition_outcome:
            detail = f"outcome {task.condition_outcome}"
        table.add_row(
            task.task_key, _state(task.state), str(task.attempt), _seconds(task.duration_seconds), detail
        )
    return table


NOTIFICATION_COLUMNS = ["event", "channel", "destination", "state", "attempts", "status", "error"]


def print_notifications(run: RunInfo) -> None:
    """The run's notifications and how their delivery went (nothing when it has none)."""
    if not run.notifications:
        return
    rows = [
        {
            "event": n.event,
            "channel": n.channel,
            "destination": n.destination,
            "state": n.state,
            "attempts": n.attempts,
            "status": n.status_code,
            "error": n.error,
        }
        for n in run.notifications
    ]
    print_rows(rows, NOTIFICATION_COLUMNS, "notifications")


def _run_row(run: RunInfo) -> dict[str, Any]:
    duration = run.duration_seconds
    return {
        "run_id": run.run_id,
        "state": run.state,
        "trigger": run.trigger,
        "started_by": run.started_by,
        "start_time": run.start_time,
        "duration_s": None if duration is None else round(duration, 1),
        "repair_count": run.repair_count,
        "error": run.error,
    }


def _follow(run: RunInfo, as_json: bool) -> None:
    """Wait for a run to end, with a live task table on a terminal; Ctrl-C cancels the run."""
    ws = workspace()
    live = console.is_terminal and not as_json
    try:
        with (
            Live(task_table(run), console=console, refresh_per_second=8, transient=False)
            if live
            else _Quiet() as view
        ):
            while run.state not in JOB_TERMINAL:
                time.sleep(REFRESH_SECONDS)
                run = ws.jobs.get_run(run.run_id)
                if view is not None:
                    view.update(task_table(run))
    except KeyboardInterrupt:
        errors.print(f"Canceling run {run.run_id}...")
        ws.jobs.cancel(run.run_id)
        while run.state not in JOB_TERMINAL:
            time.sleep(REFRESH_SECONDS)
            run = ws.jobs.get_run(run.run_id)
    _finish(run, as_json, printed=live)


class _Quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _finish(run: RunInfo, as_json: bool, printed: bool = False) -> None:
    if as_json:
        print_json(run)
    elif not printed:
        console.print(task_table(run))
    if run.state != "SUCCESS":
        if not as_json:
            why = f": {run.error}" if run.error else ""
            errors.print(f"[red]Run {run.run_id} {run.state}[/red]{why}", highlight=False)
            errors.print(
                f"Logs: lakestack jobs logs {run.run_id} TASK. "
                f"Re-run what failed: lakestack jobs repair {run.run_id}"
            )
        raise typer.Exit(RUN_NOT_SUCCESSFUL)


def drive_command(ws_path: Path) -> list[str]:
    command = [sys.executable, "-m", "lakestack.cli.main", "-w", str(ws_path.resolve())]
    if STATE.principal:
        command += ["--as", STATE.principal]
    return [*command, "jobs", "drive"]


@app.command("ls")
def jobs_ls(as_json: JsonFlag = False) -> None:
    """List the jobs you can see."""
    rows = [
        {
            "name": j.name,
            "owner": j.owner,
            "tasks": len(j.spec["tasks"]),
            "schedule": (j.spec.get("schedule") or {}).get("quartz_cron_expression"),
            "folder": j.folder,
            "updated_at": j.updated_at,
        }
        for j in workspace().jobs.list()
    ]
    emit(rows, as_json, ["name", "owner", "tasks", "schedule", "folder", "updated_at"], "jobs")


@app.command("show")
def jobs_show(name: str, as_json: JsonFlag = False) -> None:
    """Show a job: owner, folder and its tasks in run order."""
    info = workspace().jobs.get(name)
    if as_json:
        print_json(info)
        return
    spec = info.job_spec()
    console.print(
        f"[bold]{info.name}[/bold]  owner {info.owner}  folder {info.folder or '(current directory)'}"
    )
    if spec.description:
        console.print(spec.description)
    rows = [
        {
            "task_key": t.task_key,
            "type": t.kind,
            "depends_on": ", ".join(
                d.task_key + (f" ({d.outcome})" if d.outcome else "") for d in t.depends_on
            ),
            "run_if": t.run_if,
            "max_retries": t.max_retries,
            "timeout_s": t.timeout_seconds or None,
        }
        for t in spec.topological_order()
    ]
    emit(rows, False, ["task_key", "type", "depends_on", "run_if", "max_retries", "timeout_s"], "tasks")


@app.command("create")
def jobs_create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The job's YAML file.")],
    update: Annotated[
        bool, typer.Option("--update", help="Replace the job of that name if it exists.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a job from a YAML file; its folder is the job's folder (on the tasks' import path)."""
    jobs = workspace().jobs
    from lakestack.jobs.spec import JobSpec

    name = JobSpec.from_yaml(file).name
    exists = any(j.name == name for j in jobs.list())
    info = jobs.update(file) if update and exists else jobs.create(file)
    if as_json:
        print_json(info)
    else:
        done = "Updated" if update and exists else "Created"
        ok(f"{done} job '{info.name}' ({len(info.spec['tasks'])} tasks)")


@app.command("rm")
def jobs_rm(name: str, as_json: JsonFlag = False) -> None:
    """Delete a job with its runs and their logs (needs MANAGE)."""
    workspace().jobs.delete(name)
    print_json({"job": name, "deleted": True}) if as_json else ok(f"Deleted job '{name}'")


@app.command("run")
def jobs_run(
    name: str,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Override a job parameter: KEY=VALUE (repeatable)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the run (a live task table on a terminal).")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Run a job now. With --wait (the default) the exit code is 8 if the run does not succeed.

    --no-wait starts the run in a background process and prints its id.
    """
    ws = workspace()
    if not wait:
        run = ws.jobs.run_now(name, _parameters(param), detach=drive_command(STATE.path))
        print_json(run) if as_json else ok(
            f"Started run {run.run_id} of '{name}': lakestack jobs get-run {run.run_id}"
        )
        return
    run = ws.jobs.run_now(name, _parameters(param), wait=False)
    _follow(run, as_json)


@app.command("drive", hidden=True)
def jobs_drive(
    run_id: int,
    repair: Annotated[bool, typer.Option("--repair", help="Repair the finished run instead.")] = False,
) -> None:
    """Run a PENDING run to its end in this process (started by `run --no-wait` or the scheduler)."""
    jobs = workspace().jobs
    run = jobs.repair(run_id) if repair else jobs.drive(run_id)
    console.print(f"run {run.run_id}: {run.state}")


@app.command("runs")
def jobs_runs(
    name: str,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 25,
    as_json: JsonFlag = False,
) -> None:
    """A job's runs, newest first."""
    found = workspace().jobs.runs(name, limit)
    if as_json:
        print_json(found)
        return
    emit([_run_row(r) for r in found], False, RUN_COLUMNS, f"runs of {name}")


@app.command("get-run")
def jobs_get_run(run_id: int, as_json: JsonFlag = False) -> None:
    """One run with its tasks (state, attempt, duration, task values or error) and the delivery of
    its notifications."""
    run = workspace().jobs.get_run(run_id)
    if as_json:
        print_json(run)
        return
    console.print(task_table(run))
    if run.error:
        console.print(f"[red]{run.error}[/red]")
    print_notifications(run)


@app.command("logs")
def jobs_logs(
    run_id: int,
    task: str,
    attempt: Annotated[int | None, typer.Option(help="Attempt number (default: the latest).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the stdout and stderr of a task's attempt."""
    logs = workspace().jobs.logs(run_id, task, attempt)
    if as_json:
        print_json(logs)
        return
    errors.print(
        f"[dim]run {run_id} task {task} attempt {logs['attempt']} ({logs['state']}): {logs['log_dir']}[/dim]"
    )
    sys.stdout.write(logs["stdout"])
    if logs["stderr"]:
        errors.print("[dim]--- stderr ---[/dim]")
        sys.stderr.write(logs["stderr"])


@app.command("cancel")
def jobs_cancel(run_id: int, as_json: JsonFlag = False) -> None:
    """Cancel a run: running tasks are killed, tasks not started are canceled."""
    run = workspace().jobs.cancel(run_id)
    if as_json:
        print_json(run)
    elif run.state in JOB_TERMINAL and not run.cancel_requested:
        ok(f"Run {run_id} had already ended: {run.state}")
    else:
        ok(f"Cancel requested for run {run_id} ({run.state})")


@app.command("repair")
def jobs_repair(
    run_id: int,
    as_json: JsonFlag = False,
) -> None:
    """Re-run the tasks of a run that did not succeed, keeping the successful ones and their values.

    Waits for the repaired run; the exit code is 8 if it still does not succeed.
    """
    _finish(workspace().jobs.repair(run_id), as_json)
