"""Job runs and task runs in the metastore (unchecked: `service` checks grants first).

Every state change goes through `states.transition`, so an illegal move fails loudly instead
of leaving a run in a state no reader expects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import Job, JobRun, JobTrigger, TaskRun
from lakestack.errors import InvalidRunState, JobRunNotFound
from lakestack.jobs.states import transition
from lakestack.notifications.log import DeliveryInfo, DeliveryLog


def _now() -> datetime:
    return datetime.now(UTC)


def _rowcount(result: Any) -> int:
    # An UPDATE's result is a CursorResult, which SQLAlchemy's stubs do not say.
    return int(result.rowcount)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return ((end or _now()) - start).total_seconds()


@dataclass(frozen=True)
class TaskRunInfo:
    """The latest attempt of one task in a run (earlier attempts are in `ws.jobs.attempts`)."""

    task_key: str
    state: str
    attempt: int
    start_time: datetime | None
    end_time: datetime | None
    exit_code: int | None
    error: str | None
    log_dir: str | None
    task_values: dict[str, Any]
    output: dict[str, Any] | None
    condition_outcome: str | None
    id: int = field(repr=False, compare=False)

    @property
    def duration_seconds(self) -> float | None:
        return _seconds(self.start_time, self.end_time)


@dataclass(frozen=True)
class RunInfo:
    """One job run, with the latest attempt of each of its tasks in the job's order."""

    run_id: int
    job_name: str
    state: str
    trigger: str
    run_as: str
    started_by: str
    parameters: dict[str, str]
    code_version: dict[str, Any]
    repair_count: int
    error: str | None
    created_at: datetime
    start_time: datetime | None
    end_time: datetime | None
    cancel_requested: bool
    tasks: list[TaskRunInfo] = field(default_factory=list)
    #: `host:pid` of the process driving (or that last drove) the run.
    runner: str | None = None
    #: Its notifications (webhook calls, e-mails) and how their delivery went, oldest first.
    notifications: list[DeliveryInfo] = field(default_factory=list)

    @property
    def duration_seconds(self) -> float | None:
        return _seconds(self.start_time, self.end_time)

    def task(self, task_key: str) -> TaskRunInfo:
        """The task run of `task_key`; KeyError if the job has no such task."""
        for task in self.tasks:
            if task.task_key == task_key:
                return task
        raise KeyError(task_key)


@dataclass(frozen=True)
class TriggerClaim:
    """A schedule tick, periodic tick or table update to start one run for, at most once."""

    kind: str
    tick: datetime
    detail: dict[str, Any]
    claimed_by: str


@dataclass(frozen=True)
class FiredTrigger:
    """A trigger that started a run: its tick, what fired it, and when it was claimed."""

    tick: datetime
    detail: dict[str, Any]
    run_id: int | None
    created_at: datetime


@dataclass(frozen=True)
class LostRun:
    """A run whose runner is gone: nobody will move it on unless the scheduler does."""

    run_id: int
    job_name: str
    state: str
    runner: str | None
    heartbeat_at: datetime | None


def _newest_attempts(run_id: int) -> Any:
    """A query for the newest attempt of every task of the run, in creation order."""
    newest = (
        select(TaskRun.task_key, func.max(TaskRun.attempt).label("attempt"))
        .where(TaskRun.job_run_id == run_id)
        .group_by(TaskRun.task_key)
        .subquery()
    )
    joined = (TaskRun.task_key == newest.c.task_key) & (TaskRun.attempt == newest.c.attempt)
    return select(TaskRun).join(newest, joined).where(TaskRun.job_run_id == run_id).order_by(TaskRun.id)


def task_info(row: TaskRun) -> TaskRunInfo:
    return TaskRunInfo(
        row.task_key,
        row.state,
        row.attempt,
        row.start_time,
        row.end_time,
        row.exit_code,
        row.error,
        row.log_dir,
        dict(row.task_values or {}),
        row.output,
        row.condition_outcome,
        id=row.id,
    )


class RunStore:
    def __init__(self, metastore: Metastore) -> None:
        self._metastore = metastore

    @property
    def metastore(self) -> Metastore:
        return self._metastore

    # --- job runs -----------------------------------------------------------------------

    def create_run(
        self,
        job: Job,
        trigger: str,
        run_as: str,
        started_by: str,
        parameters: dict[str, str],
        code: dict[str, Any],
        task_keys: list[str],
        claim: TriggerClaim | None = None,
    ) -> int | None:
        """A PENDING run with a PENDING first attempt of every task; returns its id.

        With a `claim`, the trigger is claimed in the same transaction: if another scheduler
        (or this one, before a restart) claimed that tick already, nothing is created and the
        result is None.
        """
        try:
            with self._metastore.session() as session:
                fired = None
                if claim is not None:
                    fired = JobTrigger(
                        job_id=job.id,
                        kind=claim.kind,
                        tick=claim.tick,
                        detail=claim.detail,
                        claimed_by=claim.claimed_by,
                    )
                    session.add(fired)
                    session.flush()  # the claim: a duplicate tick fails here, before the run exists
                run = JobRun(
                    job_id=job.id,
                    state="PENDING",
                    trigger=trigger,
                    run_as=run_as,
                    started_by=started_by,
                    parameters=parameters,
                    spec=job.spec,
                    code_version=code,
                    repair_count=0,
                )
                session.add(run)
                session.flush()
                session.add_all(
                    TaskRun(job_run_id=run.id, task_key=key, attempt=1, state="PENDING", task_values={})
                    for key in task_keys
                )
                if fired is not None:
                    fired.run_id = run.id
                return run.id
        except IntegrityError:
            if claim is None:
                raise
            return None

    def jobs(self) -> list[Job]:
        """Every job, by name (for the scheduler, which only an admin starts)."""
        with self._metastore.session() as session:
            return list(session.scalars(select(Job).order_by(Job.name)))

    def last_trigger(self, job_id: int, kind: str) -> FiredTrigger | None:
        """The newest trigger of this kind that fired the job."""
        with self._metastore.session() as session:
            row = session.scalars(
                select(JobTrigger)
                .where(JobTrigger.job_id == job_id, JobTrigger.kind == kind)
                .order_by(JobTrigger.tick.desc(), JobTrigger.id.desc())
                .limit(1)
            ).first()
            return (
                None if row is None else FiredTrigger(row.tick, dict(row.detail), row.run_id, row.created_at)
            )

    # --- runners ------------------------------------------------------------------------

    def claim_runner(self, run_id: int, runner: str, *, take_over: bool = False) -> None:
        """Make `runner` (host:pid) the run's only driver. A PENDING run already claimed by
        another runner raises InvalidRunState; `take_over` (a repair) claims it regardless."""
        with self._metastore.session() as session:
            stmt = update(JobRun).where(JobRun.id == run_id)
            if not take_over:
                stmt = stmt.where(JobRun.runner.is_(None) | (JobRun.runner == runner))
            claimed = _rowcount(session.execute(stmt.values(runner=runner, heartbeat_at=_now())))
            if not claimed:
                holder = session.scalar(select(JobRun.runner).where(JobRun.id == run_id))
                raise InvalidRunState(f"Job run {run_id} is already being driven by {holder}.")

    def heartbeat(self, run_id: int) -> None:
        """Say the run's runner is alive."""
        with self._metastore.session() as session:
            session.execute(update(JobRun).where(JobRun.id == run_id).values(heartbeat_at=_now()))

    def lost_runs(
        self, lease: timedelta, alive: Callable[[str], bool | None], pending_grace: timedelta
    ) -> list[LostRun]:
        """Runs nobody drives: QUEUED or RUNNING with a runner that `alive` says is dead (or,
        when it cannot tell, silent for longer than `lease`), and PENDING runs no runner took
        within `pending_grace` or whose runner died."""
        now = _now()
        found: list[LostRun] = []
        with self._metastore.session() as session:
            rows = session.execute(
                select(JobRun, Job.name)
                .join(Job, Job.id == JobRun.job_id)
                .where(JobRun.state.in_(("PENDING", "QUEUED", "RUNNING")))
                .order_by(JobRun.id)
            ).all()
            for run, name in rows:
                if run.runner is None:
                    lost = run.state == "PENDING" and now - run.created_at > pending_grace
                else:
                    living = alive(run.runner)
                    beat = run.heartbeat_at or run.created_at
                    lost = (not living) if living is not None else now - beat > lease
                if lost:
                    found.append(LostRun(run.id, name, run.state, run.runner, run.heartbeat_at))
        return found

    def release_runner(self, run_id: int, runner: str | None) -> bool:
        """Forget a dead runner of a PENDING run so another may claim it; False if it changed."""
        with self._metastore.session() as session:
            stmt = update(JobRun).where(JobRun.id == run_id, JobRun.state == "PENDING")
            stmt = stmt.where(JobRun.runner.is_(None) if runner is None else JobRun.runner == runner)
            return bool(_rowcount(session.execute(stmt.values(runner=None, heartbeat_at=None))))

    def fail_lost_run(self, run_id: int, runner: str | None, why: str) -> list[str] | None:
        """End a run whose runner died: its running attempts FAILED with `why`, tasks not started
        CANCELED, the run FAILED (CANCELED if it was still queued). Returns the keys of the tasks
        that were running; None, doing nothing, if the run moved on or changed runner."""
        with self._metastore.session() as session:
            run = session.get(JobRun, run_id, with_for_update=True)
            if run is None or run.state not in ("QUEUED", "RUNNING") or run.runner != runner:
                return None
            tasks = session.scalars(_newest_attempts(run_id)).all()
            running: list[str] = []
            now = _now()
            for task in tasks:
                name = f"{run_id}/{task.task_key}"
                if task.state == "RUNNING":
                    task.state = transition("task run", name, task.state, "FAILED")
                    task.error = why
                    running.append(task.task_key)
                elif task.state in ("PENDING", "QUEUED"):
                    task.state = transition("task run", name, task.state, "CANCELED")
                else:
                    continue
                task.end_time = now
            final = "FAILED" if run.state == "RUNNING" else "CANCELED"
            run.state = transition("job run", str(run_id), run.state, final)
            run.error = why
            run.end_time = now
            return running

    def row(self, run_id: int) -> tuple[JobRun, str]:
        """The run row and its job's name; JobRunNotFound if there is none."""
        with self._metastore.session() as session:
            found = session.execute(
                select(JobRun, Job.name).join(Job, Job.id == JobRun.job_id).where(JobRun.id == run_id)
            ).first()
            if found is None:
                raise JobRunNotFound(
                    f"Job run {run_id} not found. List a job's runs with: lakestack jobs runs NAME"
                )
            return found[0], found[1]

    def set_run_state(self, run_id: int, new: str, **fields: Any) -> None:
        """Move the run to `new` (checked) and set `fields`; start/end times follow the state."""
        with self._metastore.session() as session:
            run = session.get(JobRun, run_id)
            assert run is not None
            run.state = transition("job run", str(run_id), run.state, new)
            if new == "RUNNING":
                run.start_time = run.start_time or _now()
                run.end_time = None
            elif new in ("SUCCESS", "FAILED", "TIMEDOUT", "CANCELED"):
                run.end_time = _now()
            for name, value in fields.items():
                setattr(run, name, value)

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set fields of the run that are not its state (parameters, repair_count, ...)."""
        assert "state" not in fields, "states change through set_run_state"
        with self._metastore.session() as session:
            run = session.get(JobRun, run_id)
            assert run is not None
            for name, value in fields.items():
                setattr(run, name, value)

    def claim_slot(self, run_id: int, limit: int) -> tuple[bool, str]:
        """Start a QUEUED run (-> RUNNING) if fewer than `limit` runs of its job are running and
        no older run of it is queued; returns whether it started, and its state."""
        with self._metastore.session() as session:
            job_id = session.scalar(select(JobRun.job_id).where(JobRun.id == run_id))
            # Claims of one job's slots take turns: this no-op UPDATE takes the job row's lock
            # (PostgreSQL) or the database's write lock (SQLite) before anything is counted, so
            # two runners never both see a free slot.
            session.execute(update(Job).where(Job.id == job_id).values(id=Job.id))
            run = session.get(JobRun, run_id, populate_existing=True)
            assert run is not None
            if run.state != "QUEUED":
                return False, run.state
            running = session.scalar(
                select(func.count()).where(JobRun.job_id == run.job_id, JobRun.state == "RUNNING")
            )
            oldest = session.scalar(
                select(func.min(JobRun.id)).where(JobRun.job_id == run.job_id, JobRun.state == "QUEUED")
            )
            if (running or 0) >= limit or oldest != run_id:
                return False, run.state
            run.state = transition("job run", str(run_id), run.state, "RUNNING")
            run.start_time = _now()
            return True, run.state

    def request_cancel(self, run_id: int) -> str:
        """Ask the run's runner to stop; a run nobody started yet is canceled at once. Returns
        the run's state after the request."""
        with self._metastore.session() as session:
            run = session.get(JobRun, run_id)
            assert run is not None
            if run.state in ("PENDING", "QUEUED"):
                run.state = transition("job run", str(run_id), run.state, "CANCELED")
                run.end_time = _now()
                for task in session.scalars(
                    select(TaskRun).where(TaskRun.job_run_id == run_id, TaskRun.state == "PENDING")
                ):
                    task.state = transition("task run", f"{run_id}/{task.task_key}", task.state, "CANCELED")
            elif run.state == "RUNNING" and run.cancel_requested_at is None:
                run.cancel_requested_at = _now()
            return run.state

    def cancel_requested(self, run_id: int) -> bool:
        with self._metastore.session() as session:
            return session.scalar(select(JobRun.cancel_requested_at).where(JobRun.id == run_id)) is not None

    def runs(self, job_id: int, limit: int) -> list[int]:
        with self._metastore.session() as session:
            stmt = select(JobRun.id).where(JobRun.job_id == job_id).order_by(JobRun.id.desc()).limit(limit)
            return list(session.scalars(stmt))

    def info(self, run_id: int, task_order: list[str] | None = None) -> RunInfo:
        """The run with the latest attempt of each task (in `task_order` when given)."""
        run, job_name = self.row(run_id)
        latest = self.latest_tasks(run_id)
        order = task_order or list(latest)
        return RunInfo(
            run.id,
            job_name,
            run.state,
            run.trigger,
            run.run_as,
            run.started_by,
            dict(run.parameters or {}),
            dict(run.code_version or {}),
            run.repair_count,
            run.error,
            run.created_at,
            run.start_time,
            run.end_time,
            run.cancel_requested_at is not None,
            [task_info(latest[key]) for key in order if key in latest],
            run.runner,
            DeliveryLog(self._metastore).list("job_run", str(run_id)),
        )

    # --- task runs ----------------------------------------------------------------------

    def latest_tasks(self, run_id: int) -> dict[str, TaskRun]:
        """The newest attempt of every task of the run, by task key."""
        with self._metastore.session() as session:
            return {row.task_key: row for row in session.scalars(_newest_attempts(run_id))}

    def attempts(self, run_id: int, task_key: str) -> list[TaskRunInfo]:
        """Every attempt of one task of the run, oldest first."""
        with self._metastore.session() as session:
            stmt = (
                select(TaskRun)
                .where(TaskRun.job_run_id == run_id, TaskRun.task_key == task_key)
                .order_by(TaskRun.attempt)
            )
            return [task_info(row) for row in session.scalars(stmt)]

    def add_attempt(self, run_id: int, task_key: str, attempt: int) -> int:
        """A PENDING task run for the next attempt (a retry or a repair); returns its id."""
        with self._metastore.session() as session:
            row = TaskRun(
                job_run_id=run_id, task_key=task_key, attempt=attempt, state="PENDING", task_values={}
            )
            session.add(row)
            session.flush()
            return row.id

    def set_task_state(self, task_run_id: int, new: str, **fields: Any) -> None:
        """Move a task run to `new` (checked) and set `fields`; start/end times follow the state."""
        with self._metastore.session() as session:
            row = session.get(TaskRun, task_run_id)
            assert row is not None
            row.state = transition("task run", f"{row.job_run_id}/{row.task_key}", row.state, new)
            if new == "RUNNING":
                row.start_time = _now()
            elif new not in ("PENDING", "QUEUED"):
                row.end_time = _now()
            for name, value in fields.items():
                setattr(row, name, value)
