"""Drive one job run to its end in the calling process.

Tasks start in dependency order, up to `parallelism` at once (a thread per running attempt,
each waiting on its executor). When every dependency of a task has ended, its `run_if` decides:

| run_if               | runs when (among its dependencies)   | otherwise                        |
|----------------------|--------------------------------------|----------------------------------|
| ALL_SUCCESS          | all succeeded                        | UPSTREAM_FAILED if one failed, else SKIPPED |
| AT_LEAST_ONE_SUCCESS | at least one succeeded               | UPSTREAM_FAILED if one failed, else SKIPPED |
| NONE_FAILED          | none failed and one succeeded        | UPSTREAM_FAILED if one failed, else SKIPPED |
| ALL_DONE             | always                               | -                                |
| AT_LEAST_ONE_FAILED  | at least one failed                  | SKIPPED                          |
| ALL_FAILED           | all failed                           | SKIPPED                          |

"Failed" is FAILED, TIMEDOUT, UPSTREAM_FAILED or CANCELED; a dependency on a condition task
whose `outcome` is not the one the condition took counts as skipped, not succeeded.

A failed attempt is retried `max_retries` times (-1: until the job's timeout), after
`min_retry_interval_millis`; a timed-out one only with `retry_on_timeout`. `{{...}}` references
in a task's settings are resolved just before each attempt. The job's `timeout_seconds` caps
every attempt; a run canceled (from any process, through the metastore) kills its running
attempts and cancels the tasks not started. The run ends FAILED when any task failed.

A run waits QUEUED while `max_concurrent_runs` runs of its job are RUNNING (oldest first), or is
skipped (CANCELED, saying why) when the job's queue is disabled. The check and the start are
one metastore transaction that holds the job's lock, so runners in any number of processes
never start one run too many. A repair does not queue.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lakestack.config import WorkspaceConfig
from lakestack.errors import JobError, LakestackError
from lakestack.jobs.executors import Attempt, AttemptResult, Executor, executor_for
from lakestack.jobs.notify import RunNotifier
from lakestack.jobs.references import START_TIME_FIELDS, Reference, substitute
from lakestack.jobs.spec import JobSpec, Task
from lakestack.jobs.states import FAILED_STATES, JOB_TERMINAL
from lakestack.jobs.store import RunStore
from lakestack.jobs.task_values import TASK_FILE, VALUES_FILE
from lakestack.jobs.tasks import evaluate_condition

OUTPUT_FILE = "output.json"
#: How often a running job checks the metastore for a cancel request.
CANCEL_POLL_SECONDS = 0.2
#: How often a queued run checks whether it may start.
QUEUE_POLL_SECONDS = 0.25
#: How often a runner tells the metastore it is alive (the scheduler's lease is much longer).
HEARTBEAT_SECONDS = 5.0
_DEPENDENCY_FAILED = FAILED_STATES | {"CANCELED"}


def runs_folder(workspace_folder: Path) -> Path:
    return workspace_folder / "jobs" / "runs"


def runner_id() -> str:
    """`host:pid` of this process, as recorded on the runs it drives."""
    return f"{socket.gethostname()}:{os.getpid()}"


def default_parallelism() -> int:
    return max(2, min(8, os.cpu_count() or 2))


@dataclass(frozen=True)
class RunContext:
    """What a run's tasks need to know about where and as whom they run."""

    workspace_folder: Path
    job_id: int
    job_name: str
    job_folder: Path | None
    principal: str
    commit: dict[str, str]
    jobs: JobStarter | None = None


class JobStarter(Protocol):
    """Starts other jobs for run_job tasks, as the run's principal (the service provides it)."""

    def start(self, job_name: str, parameters: dict[str, str]) -> int:
        """Start a run of `job_name` in the background; its run id."""

    def state(self, run_id: int) -> tuple[str, str | None]:
        """The run's state and error."""

    def cancel(self, run_id: int) -> None:
        """Ask the run to stop."""


def run_if_decision(task: Task, upstream: dict[str, tuple[str, str | None]]) -> str:
    """`RUN`, `SKIPPED` or `UPSTREAM_FAILED` for `task`, from its dependencies' (state, outcome)."""
    if not task.depends_on:
        return "RUN"
    succeeded = failed = 0
    for dependency in task.depends_on:
        state, outcome = upstream[dependency.task_key]
        if state in _DEPENDENCY_FAILED:
            failed += 1
        elif state == "SUCCESS" and (dependency.outcome is None or dependency.outcome == outcome):
            succeeded += 1
    total = len(task.depends_on)
    rule = task.run_if
    if rule == "ALL_DONE":
        return "RUN"
    if rule == "AT_LEAST_ONE_FAILED":
        return "RUN" if failed else "SKIPPED"
    if rule == "ALL_FAILED":
        return "RUN" if failed == total else "SKIPPED"
    runs = {
        "ALL_SUCCESS": succeeded == total,
        "AT_LEAST_ONE_SUCCESS": succeeded > 0,
        "NONE_FAILED": failed == 0 and succeeded > 0,
    }[rule]
    if runs:
        return "RUN"
    return "UPSTREAM_FAILED" if failed else "SKIPPED"


class Runner:
    """Runs (or repairs) one job run; `executor` overrides each task's `compute` (tests, bench)."""

    def __init__(
        self,
        store: RunStore,
        context: RunContext,
        run_id: int,
        executor: Executor | None = None,
        parallelism: int | None = None,
    ) -> None:
        self._store = store
        self._context = context
        self._run_id = run_id
        self._executor = executor
        self._parallelism = parallelism or default_parallelism()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        run, _ = store.row(run_id)
        self._spec = JobSpec.model_validate(run.spec)
        self._parameters = dict(run.parameters or {})
        self._trigger = run.trigger
        self._repair_count = run.repair_count
        self._start: datetime = run.start_time or datetime.now(UTC)
        self._deadline: float | None = None
        # Latest state, condition outcome, task values and task run id of every task.
        self._states: dict[str, str] = {}
        self._outcomes: dict[str, str | None] = {}
        self._values: dict[str, dict[str, Any]] = {}
        self._task_run_ids: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._next_heartbeat = 0.0
        self._notify = RunNotifier(store, context, run_id, self._spec)
        # One executor per compute for the whole run (a Ray one holds a cluster connection).
        self._executors: dict[str, Executor] = {}

    # --- the run ------------------------------------------------------------------------

    def execute(self, only: set[str] | None = None) -> str:
        """Run the tasks in `only` (all when None), keeping the others' results; returns the
        run's final state."""
        latest = self._store.latest_tasks(self._run_id)
        for key, row in latest.items():
            self._states[key] = row.state
            self._outcomes[key] = row.condition_outcome
            self._values[key] = dict(row.task_values or {})
            self._task_run_ids[key] = row.id
            self._attempts[key] = row.attempt
        todo = [t for t in self._spec.topological_order() if only is None or t.task_key in only]
        # One driver per run: a second `drive` of the same run (or the scheduler restarting a
        # run it thinks lost) stops here instead of running every task twice.
        self._store.claim_runner(self._run_id, runner_id(), take_over=only is not None)
        self._next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        for task in todo:
            if only is not None:  # a repair: the task gets a fresh attempt
                self._attempts[task.task_key] += 1
                self._task_run_ids[task.task_key] = self._store.add_attempt(
                    self._run_id, task.task_key, self._attempts[task.task_key]
                )
            self._states[task.task_key] = "PENDING"
        if only is not None:
            self._store.set_run_state(self._run_id, "RUNNING")
        elif not self._wait_for_slot():
            return self._notify.ended(self._store.row(self._run_id)[0].state)
        run, _ = self._store.row(self._run_id)
        self._start = run.start_time or self._start
        self._notify.event("on_start")
        if self._spec.timeout_seconds:
            # A repair gets the job's whole timeout again.
            self._deadline = time.monotonic() + self._spec.timeout_seconds
        timed_out = False
        try:
            timed_out = self._drive(todo)
        except BaseException as exc:
            # `_drive` has killed the running attempts already; nothing is left behind.
            self._finish_unstarted("CANCELED")
            if isinstance(exc, KeyboardInterrupt):
                self._store.set_run_state(self._run_id, "CANCELED", error="interrupted (Ctrl-C)")
            else:
                self._store.set_run_state(self._run_id, "FAILED", error=f"the runner stopped: {exc!r}")
            self._notify.ended("CANCELED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
            raise
        finally:
            self._close_executors()
        return self._finish(timed_out)

    def _wait_for_slot(self) -> bool:
        """Queue the run until fewer than `max_concurrent_runs` runs of the job are running and
        it is the oldest queued one (then it is RUNNING); False if it was canceled while queued,
        or skipped (CANCELED) because the queue is disabled."""
        limit = self._spec.max_concurrent_runs
        self._store.set_run_state(self._run_id, "QUEUED")
        while True:
            claimed, state = self._store.claim_slot(self._run_id, limit)
            if claimed:
                return True
            if state != "QUEUED":
                return False
            self._heartbeat()
            if not self._spec.queue.enabled:
                self._store.request_cancel(self._run_id)
                self._store.update_run(
                    self._run_id,
                    error=f"skipped: {limit} run(s) of the job already running (max_concurrent_runs) "
                    "and its queue is disabled",
                )
                return False
            time.sleep(QUEUE_POLL_SECONDS)

    def _drive(self, todo: list[Task]) -> bool:
        """Start tasks as their dependencies end; returns whether the job's timeout passed."""
        waiting = list(todo)
        running: dict[Future[str], str] = {}
        with ThreadPoolExecutor(self._parallelism, thread_name_prefix=f"job-run-{self._run_id}") as pool:
            try:
                return self._loop(pool, waiting, running)
            except BaseException:
                # Stop running attempts (Ctrl-C, a bug): the pool's shutdown waits for them.
                self._cancel.set()
                raise

    def _loop(self, pool: ThreadPoolExecutor, waiting: list[Task], running: dict[Future[str], str]) -> bool:
        """Start tasks whose dependencies ended, until none is waiting or running."""
        next_poll = 0.0
        timed_out = False
        while waiting or running:
            self._heartbeat()
            now = time.monotonic()
            if now >= next_poll and not self._cancel.is_set():
                next_poll = now + CANCEL_POLL_SECONDS
                if self._store.cancel_requested(self._run_id):
                    self._cancel.set()
            if self._deadline is not None and now >= self._deadline:
                # Running attempts stop on their own: their timeout is capped at the job's.
                timed_out = True
            if self._cancel.is_set() or timed_out:
                for task in waiting:
                    self._set_task(task.task_key, "CANCELED")
                waiting = []
            for task in [t for t in waiting if self._ready(t)]:
                waiting.remove(task)
                self._start_task(task, pool, running)
            if not running:
                if waiting and not any(self._ready(t) for t in waiting):
                    raise JobError(f"job run {self._run_id}: tasks wait on tasks that never run")
                continue
            done, _ = wait(list(running), timeout=CANCEL_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                future.result()  # a bug in the attempt loop surfaces here, not silently
        return timed_out

    @functools.cached_property
    def _hidden_env(self) -> frozenset[str]:
        """Notification secrets in this process's environment, kept from task processes: task
        code runs as the run's principal and has no business with the workspace's secrets."""
        return WorkspaceConfig.load(self._context.workspace_folder).notifications.secret_env_names()

    def _heartbeat(self) -> None:
        if time.monotonic() >= self._next_heartbeat:
            self._next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
            self._store.heartbeat(self._run_id)

    def _ready(self, task: Task) -> bool:
        return all(
            self._states.get(d.task_key) not in (None, "PENDING", "QUEUED", "RUNNING")
            for d in task.depends_on
        )

    def _start_task(self, task: Task, pool: ThreadPoolExecutor, running: dict[Future[str], str]) -> None:
        upstream = {
            d.task_key: (self._states[d.task_key], self._outcomes.get(d.task_key)) for d in task.depends_on
        }
        decision = run_if_decision(task, upstream)
        if decision != "RUN":
            self._set_task(task.task_key, decision)
            return
        if task.condition_task is not None:
            self._run_condition(task)
            return
        self._set_task(task.task_key, "QUEUED")
        running[pool.submit(self._run_attempts, task)] = task.task_key

    def _finish(self, timed_out: bool) -> str:
        states = self._states
        failed = [key for key in self._spec.topological_order() if states[key.task_key] in FAILED_STATES]
        if timed_out:
            final, error = "TIMEDOUT", f"the job timed out after {self._spec.timeout_seconds} s"
        elif self._cancel.is_set():
            final, error = "CANCELED", "canceled"
        elif failed:
            first = failed[0].task_key
            final = "FAILED"
            row = self._store.latest_tasks(self._run_id)[first]
            error = f"task '{first}' {states[first]}" + (f": {row.error}" if row.error else "")
        else:
            final, error = "SUCCESS", None
        self._store.set_run_state(self._run_id, final, error=error)
        return self._notify.ended(final)

    def _finish_unstarted(self, state: str) -> None:
        for key, current in list(self._states.items()):
            if current in ("PENDING", "QUEUED"):
                with contextlib.suppress(LakestackError):
                    self._set_task(key, state)

    # --- one task -----------------------------------------------------------------------

    def _set_task(self, task_key: str, state: str, **fields: Any) -> None:
        self._store.set_task_state(self._task_run_ids[task_key], state, **fields)
        with self._lock:
            self._states[task_key] = state
            if "task_values" in fields:
                self._values[task_key] = fields["task_values"]
            if "condition_outcome" in fields:
                self._outcomes[task_key] = fields["condition_outcome"]

    def _run_condition(self, task: Task) -> None:
        condition = task.condition_task
        assert condition is not None
        self._set_task(task.task_key, "RUNNING")
        try:
            left = str(substitute(condition.left, lambda ref: self._lookup(task, ref)))
            right = str(substitute(condition.right, lambda ref: self._lookup(task, ref)))
        except LakestackError as exc:
            self._set_task(task.task_key, "FAILED", error=exc.message)
            return
        outcome = "true" if evaluate_condition(condition.op, left, right) else "false"
        self._set_task(
            task.task_key,
            "SUCCESS",
            condition_outcome=outcome,
            output={"left": left, "op": condition.op, "right": right, "outcome": outcome},
        )

    def _run_attempts(self, task: Task) -> str:
        """Every attempt of one task, retrying per its policy; returns its final state."""
        key = task.task_key
        retries = 0
        while True:
            result = self._run_attempt(task)
            retry = result.state == "FAILED" or (result.state == "TIMEDOUT" and task.retry_on_timeout)
            if not retry or self._cancel.is_set() or (0 <= task.max_retries <= retries):
                return result.state
            if self._deadline is not None and time.monotonic() >= self._deadline:
                return result.state
            if self._cancel.wait(task.min_retry_interval_millis / 1000):
                return result.state
            retries += 1
            with self._lock:
                self._attempts[key] += 1
                attempt = self._attempts[key]
            self._task_run_ids[key] = self._store.add_attempt(self._run_id, key, attempt)
            self._set_task(key, "QUEUED")

    def _run_attempt(self, task: Task) -> AttemptResult:
        if task.run_job_task is not None:
            return self._run_job(task)
        key = task.task_key
        attempt = self._attempts[key]
        directory = (
            runs_folder(self._context.workspace_folder) / str(self._run_id) / key / f"attempt-{attempt}"
        )
        if directory.exists():  # left by a runner that crashed mid-attempt
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        self._set_task(key, "RUNNING", log_dir=str(directory))
        try:
            settings = self._resolved_settings(task)
            executor = self._executor or self._executor_for(self._spec.compute_for(key))
        except LakestackError as exc:
            result = AttemptResult("FAILED", None, exc.message)
            self._set_task(key, "FAILED", error=result.error)
            return result
        (directory / TASK_FILE).write_text(json.dumps(self._task_file(task, settings)))
        timeout = float(task.timeout_seconds) or None
        if self._deadline is not None:
            left = max(0.0, self._deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        result = executor.run(
            Attempt(
                self._run_id,
                key,
                attempt,
                directory,
                self._context.job_folder or Path.cwd(),
                {"LAKESTACK_HOME": str(self._context.workspace_folder), "PYTHONUNBUFFERED": "1"},
                timeout,
                self._hidden_env,
            ),
            self._cancel.is_set,
        )
        values = _read_json(directory / VALUES_FILE) or {}
        self._set_task(
            key,
            result.state,
            exit_code=result.exit_code,
            error=result.error,
            task_values=values,
            output=_read_json(directory / OUTPUT_FILE),
        )
        return result

    def _executor_for(self, compute: str) -> Executor:
        with self._lock:
            if compute not in self._executors:
                self._executors[compute] = executor_for(compute, self._context.workspace_folder)
            return self._executors[compute]

    def _close_executors(self) -> None:
        with self._lock:
            made, self._executors = list(self._executors.values()), {}
        for executor in made:
            executor.close()

    def _run_job(self, task: Task) -> AttemptResult:
        """A run_job task: start the other job's run, wait for it, stop it on timeout or cancel."""
        settings, key, jobs = task.run_job_task, task.task_key, self._context.jobs
        assert settings is not None and jobs is not None
        self._set_task(key, "RUNNING")
        try:
            parameters = {
                name: str(substitute(value, lambda ref: self._lookup(task, ref)))
                for name, value in settings.job_parameters.items()
            }
            child = jobs.start(settings.job_name, parameters)
        except LakestackError as exc:
            result = AttemptResult("FAILED", None, exc.message)
            self._set_task(key, "FAILED", error=result.error)
            return result
        deadline = None if not task.timeout_seconds else time.monotonic() + task.timeout_seconds
        if self._deadline is not None:
            deadline = self._deadline if deadline is None else min(deadline, self._deadline)
        stopped: str | None = None
        while True:
            state, error = jobs.state(child)
            if state in JOB_TERMINAL:
                break
            if stopped is None and deadline is not None and time.monotonic() >= deadline:
                stopped = "TIMEDOUT"
            elif stopped is None and self._cancel.is_set():
                stopped = "CANCELED"
            if stopped is not None:
                jobs.cancel(child)
            time.sleep(CANCEL_POLL_SECONDS / 2)
        output = {"job_name": settings.job_name, "run_id": child, "state": state}
        if stopped == "TIMEDOUT":
            result = AttemptResult("TIMEDOUT", None, f"timed out after {task.timeout_seconds} s")
        elif stopped == "CANCELED":
            result = AttemptResult("CANCELED", None, "canceled")
        elif state == "SUCCESS":
            result = AttemptResult("SUCCESS")
        else:
            why = f": {error}" if error else ""
            result = AttemptResult("FAILED", None, f"run {child} of job '{settings.job_name}' {state}{why}")
        self._set_task(key, result.state, error=result.error, output=output)
        return result

    def _task_file(self, task: Task, settings: dict[str, Any]) -> dict[str, Any]:
        context = self._context
        upstream = self._spec.upstream(task.task_key)
        return {
            "kind": task.kind,
            "task_key": task.task_key,
            "attempt": self._attempts[task.task_key],
            "job_name": context.job_name,
            "run_id": self._run_id,
            "workspace": str(context.workspace_folder.resolve()),
            "principal": context.principal,
            "job_folder": str(context.job_folder.resolve()) if context.job_folder else None,
            "settings": settings,
            "upstream_values": {k: self._values.get(k, {}) for k in sorted(upstream)},
            "commit": context.commit,
            "properties": {
                "job": context.job_name,
                "run_id": self._run_id,
                "task_key": task.task_key,
                "attempt": self._attempts[task.task_key],
                "principal": context.principal,
            },
        }

    def _resolved_settings(self, task: Task) -> dict[str, Any]:
        def text(value: str) -> Any:
            return substitute(value, lambda ref: self._lookup(task, ref))

        notebook = task.notebook_task
        if notebook is not None:
            # Values stay text, as Databricks widgets give them.
            return {
                "notebook_path": notebook.notebook_path,
                "parameters": {name: str(text(value)) for name, value in notebook.base_parameters.items()},
            }
        python, sql = task.python_task, task.sql_task
        if python is not None:
            return {
                "function": python.function,
                "parameters": {
                    name: _resolve_json(value, lambda v: substitute(v, lambda r: self._lookup(task, r), True))
                    for name, value in python.parameters.items()
                },
                "script": python.script,
                "args": [str(text(arg)) for arg in python.args],
            }
        assert sql is not None
        if sql.query is not None:
            return {"query": text(sql.query)}
        folder = self._context.job_folder or Path.cwd()
        path = folder / str(sql.file)
        if not path.exists():
            raise JobError(f"SQL file '{path}' of task '{task.task_key}' does not exist.")
        return {"query": text(path.read_text())}

    def _lookup(self, task: Task, ref: Reference) -> Any:
        """The value a reference stands for, right now."""
        if ref.kind == "job_parameter":
            return self._parameters[ref.name]
        if ref.kind == "job":
            return job_value(
                ref.name,
                job_id=self._context.job_id,
                job_name=self._context.job_name,
                run_id=self._run_id,
                repair_count=self._repair_count,
                trigger=self._trigger,
                start=self._start,
            )
        if ref.kind == "task":
            fields = {
                "name": task.task_key,
                "run_id": self._task_run_ids[task.task_key],
                "execution_count": self._attempts[task.task_key],
            }
            return fields[ref.name]
        assert ref.task_key is not None
        if ref.kind == "upstream_task":
            if ref.name == "run_id":
                return self._task_run_ids[ref.task_key]
            return self._states[ref.task_key]
        values = self._values.get(ref.task_key, {})
        if ref.name not in values:
            raise JobError(
                f"Task '{task.task_key}' reads {ref.braced}, but task '{ref.task_key}' set no value "
                f"'{ref.name}' (it set: {', '.join(sorted(values)) or 'none'})."
            )
        return values[ref.name]


def job_value(
    name: str, *, job_id: int, job_name: str, run_id: int, repair_count: int, trigger: str, start: datetime
) -> Any:
    """The run attribute `{{job.<name>}}` names (see `lakestack.jobs.references`)."""
    if name.startswith("start_time"):
        field = name.partition(".")[2] or "iso_datetime"
        assert field in START_TIME_FIELDS
        start = start.astimezone(UTC)
        return {
            "iso_date": start.date().isoformat(),
            "iso_datetime": start.isoformat(),
            "timestamp_ms": int(start.timestamp() * 1000),
            "year": start.year,
            "month": start.month,
            "day": start.day,
            "hour": start.hour,
            "minute": start.minute,
            "second": start.second,
            "day_of_week": start.isoweekday(),
            "is_weekday": start.isoweekday() <= 5,
        }[field]
    return {
        "id": job_id,
        "name": job_name,
        "run_id": run_id,
        "repair_count": repair_count,
        "trigger.type": trigger,
    }[name]


def _resolve_json(value: Any, resolve: Any) -> Any:
    if isinstance(value, str):
        return resolve(value)
    if isinstance(value, list):
        return [_resolve_json(item, resolve) for item in value]
    if isinstance(value, dict):
        return {key: _resolve_json(item, resolve) for key, item in value.items()}
    return value


def _read_json(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None
