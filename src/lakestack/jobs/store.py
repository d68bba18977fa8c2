"""Job runs and task runs in the metastore (unchecked: `service` checks grants first).

Every state change goes through `states.transition`, so an illegal move fails loudly instead
of leaving a run in a state no reader expects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import Job, JobRun, TaskRun
from lakestack.errors import JobRunNotFound
from lakestack.jobs.states import transition
from lakestack.notifications.log import DeliveryInfo, DeliveryLog


def _now() -> datetime:
    return datetime.now(UTC)


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
    ) -> int:
        """A PENDING run with a PENDING first attempt of every task; returns its id."""
        with self._metastore.session() as session:
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
            return run.id

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
            run = session.get(JobRun, run_id)
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
            DeliveryLog(self._metastore).list("job_run", str(run_id)),
        )

    # --- task runs ----------------------------------------------------------------------

    def latest_tasks(self, run_id: int) -> dict[str, TaskRun]:
        """The newest attempt of every task of the run, by task key."""
        with self._metastore.session() as session:
            newest = (
                select(TaskRun.task_key, func.max(TaskRun.attempt).label("attempt"))
                .where(TaskRun.job_run_id == run_id)
                .group_by(TaskRun.task_key)
                .subquery()
            )
            stmt = select(TaskRun).join(
                newest,
                (TaskRun.task_key == newest.c.task_key) & (TaskRun.attempt == newest.c.attempt),
            )
            rows = session.scalars(stmt.where(TaskRun.job_run_id == run_id).order_by(TaskRun.id))
            return {row.task_key: row for row in rows}

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
