"""`ws.jobs`: create jobs, run them, watch, cancel and repair their runs.

```python
ws.jobs.create("jobs/train.yml")                       # the YAML's folder is the job's folder
run = ws.jobs.run_now("churn training", {"catalog": "prod"})
run.state, run.task("train").task_values
ws.jobs.repair(run.run_id)                             # re-run what failed, keep what succeeded
```

Who may do what (a job is a securable of kind `job` with no parent; grant on it with
`ws.grants.grant("CAN_MANAGE_RUN", "job", "churn training", "alice")`):

- any principal may create a job, and owns it (owners and admins may do everything);
- CAN_VIEW: see the job, its runs, their task values, outputs and logs;
- CAN_MANAGE_RUN (implies CAN_VIEW): run it, cancel and repair its runs;
- MANAGE (implies both): update and delete it, grant on it;
- `run_as` naming anyone but the creator needs an admin.

Every call is checked with the acting principal and audited. A run acts as the job's `run_as`
principal, else its owner, whoever started it.
"""

from __future__ import annotations

import builtins
import shutil
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lakestack.catalog.access import AccessControl
from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import Job, JobRun
from lakestack.catalog.names import Name
from lakestack.catalog.principals import Caller, PrincipalStore, principal_row
from lakestack.catalog.privileges import Privilege
from lakestack.catalog.securables import SecurableStore
from lakestack.errors import InvalidParameter, InvalidRunState, JobError, SecurableExists
from lakestack.jobs.executors import Executor
from lakestack.jobs.executors.base import STDERR, STDOUT
from lakestack.jobs.references import substitute
from lakestack.jobs.runner import RunContext, Runner, job_value, runs_folder
from lakestack.jobs.spec import JobSpec
from lakestack.jobs.states import JOB_TERMINAL, REPAIRABLE
from lakestack.jobs.store import RunInfo, RunStore, TaskRunInfo, TriggerClaim
from lakestack.models.tracking import code_version
from lakestack.notifications.log import DeliveryLog

if TYPE_CHECKING:
    from lakestack.jobs.scheduler import Scheduler, TableVersions


@dataclass(frozen=True)
class JobInfo:
    """A job as stored: its spec (as JSON, and the YAML it came from) and its folder."""

    name: str
    owner: str
    spec: dict[str, Any]
    spec_yaml: str
    folder: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    id: int = field(repr=False, compare=False)

    def job_spec(self) -> JobSpec:
        return JobSpec.model_validate(self.spec)


def job_info(job: Job) -> JobInfo:
    return JobInfo(
        job.name,
        job.owner,
        dict(job.spec),
        job.spec_yaml,
        job.folder,
        job.created_at,
        job.created_by,
        job.updated_at,
        job.updated_by,
        id=job.id,
    )


def _load(source: JobSpec | str | Path, folder: str | Path | None) -> tuple[JobSpec, str, str | None]:
    """The spec, its YAML text, and the job's folder (the YAML file's, unless `folder` is given)."""
    if isinstance(source, JobSpec):
        spec, text, where = source, source.to_yaml(), None
    else:
        is_path = isinstance(source, Path) or (
            "\n" not in source and source.strip().endswith((".yml", ".yaml"))
        )
        spec = JobSpec.from_yaml(Path(source) if is_path else source)
        text = Path(source).read_text() if is_path else str(source)
        where = str(Path(source).resolve().parent) if is_path else None
    if folder is not None:
        where = str(Path(folder).resolve())
    return spec, text, where


class Jobs:
    def __init__(
        self,
        metastore: Metastore,
        securables: SecurableStore,
        access: AccessControl,
        caller: Caller,
        workspace_folder: Path,
    ) -> None:
        self._metastore = metastore
        self._securables = securables
        self._access = access
        self._caller = caller
        self._folder = workspace_folder
        self._store = RunStore(metastore)

    # --- checks -------------------------------------------------------------------------

    def _check(
        self,
        session: Session,
        action: str,
        name: str,
        privilege: Privilege,
        detail: dict[str, Any] | None = None,
    ) -> Job:
        row = self._access.check(session, self._caller, action, "job", Name((name,)), privilege, detail)
        job = session.scalar(select(Job).where(Job.securable_id == row.id))
        assert job is not None
        return job

    def _check_run(self, action: str, run_id: int, privilege: Privilege) -> Job:
        _, job_name = self._store.row(run_id)
        with self._metastore.session() as session:
            return self._check(session, action, job_name, privilege, {"run_id": run_id})

    def _check_run_as(self, spec: JobSpec, action: str) -> None:
        other = spec.run_as.principal if spec.run_as else None
        if other and other != self._caller.name:
            self._access.require_admin(self._caller, action, f"make a job run as '{other}'", spec.name)
            with self._metastore.session() as session:
                principal_row(session, other)

    # --- jobs ---------------------------------------------------------------------------

    def create(self, spec: JobSpec | str | Path, *, folder: str | Path | None = None) -> JobInfo:
        """Create a job from a JobSpec, a YAML file or YAML text; the caller owns it.

        The job's folder (put on the import path of python tasks, the base of relative paths)
        is the YAML file's folder, or `folder`, or for a spec without one the current directory
        when it runs. A malformed spec raises InvalidJobSpec and creates nothing.
        """
        parsed, text, where = _load(spec, folder)
        self._check_run_as(parsed, "jobs.create")
        with self._metastore.session() as session:
            name = Name((parsed.name,))
            if self._securables.find(session, "job", name) is not None:
                raise SecurableExists(
                    "job", parsed.name, "Change it with: lakestack jobs create FILE --update"
                )
            row = self._securables.create(session, "job", name, self._caller.name, comment=parsed.description)
            job = Job(
                securable_id=row.id,
                name=parsed.name,
                spec=parsed.model_dump(mode="json"),
                spec_yaml=text,
                folder=where,
                owner=self._caller.name,
                created_by=self._caller.name,
                updated_by=self._caller.name,
            )
            session.add(job)
            session.flush()
            self._access.record(
                self._caller.name, "jobs.create", "job", parsed.name, None, True, None, session
            )
            return job_info(job)

    def update(self, spec: JobSpec | str | Path, *, folder: str | Path | None = None) -> JobInfo:
        """Replace the spec of the job it names (needs MANAGE); runs in progress keep theirs."""
        parsed, text, where = _load(spec, folder)
        self._check_run_as(parsed, "jobs.update")
        with self._metastore.session() as session:
            job = self._check(session, "jobs.update", parsed.name, Privilege.MANAGE)
            job.spec = parsed.model_dump(mode="json")
            job.spec_yaml = text
            job.folder = where if where is not None else job.folder
            job.updated_at = datetime.now(UTC)
            job.updated_by = self._caller.name
            return job_info(job)

    def get(self, name: str) -> JobInfo:
        """One job (needs CAN_VIEW)."""
        with self._metastore.session() as session:
            return job_info(self._check(session, "jobs.get", name, Privilege.CAN_VIEW))

    def list(self) -> builtins.list[JobInfo]:
        """The jobs the caller can see, by name."""
        with self._metastore.session() as session:
            self._access.record(self._caller.name, "jobs.list", "job", None, None, True)
            rows = self._securables.children(session, None, "job")
            visible = [r.id for r in rows if self._access.can_see(session, self._caller, r)]
            jobs = session.scalars(select(Job).where(Job.securable_id.in_(visible)).order_by(Job.name))
            return [job_info(job) for job in jobs]

    def delete(self, name: str) -> None:
        """Delete a job with its runs, their records and logs (needs MANAGE); not while it runs."""
        with self._metastore.session() as session:
            job = self._check(session, "jobs.delete", name, Privilege.MANAGE)
            active = session.scalars(
                select(JobRun.id).where(JobRun.job_id == job.id, JobRun.state.not_in(JOB_TERMINAL))
            ).all()
            if active:
                raise InvalidRunState(
                    f"Job '{name}' has active runs ({', '.join(map(str, active))}); cancel them first: "
                    f"lakestack jobs cancel {active[0]}"
                )
            run_ids = session.scalars(select(JobRun.id).where(JobRun.job_id == job.id)).all()
            securable = self._securables.find(session, "job", Name((name,)))
            assert securable is not None
            session.delete(job)
            session.delete(securable)
        DeliveryLog(self._metastore).delete("job_run", (str(run_id) for run_id in run_ids))
        for run_id in run_ids:
            shutil.rmtree(runs_folder(self._folder) / str(run_id), ignore_errors=True)

    # --- runs ---------------------------------------------------------------------------

    def run_now(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        *,
        wait: bool = True,
        executor: Executor | None = None,
        parallelism: int | None = None,
        detach: builtins.list[str] | None = None,
    ) -> RunInfo:
        """Start a run (needs CAN_MANAGE_RUN); with `wait`, run it to its end here and return it.

        `parameters` override the job's defaults (unknown names are refused) and are taken as
        written; defaults may use run values such as `{{job.start_time.iso_date}}`. Without `wait`,
        the run goes on in a thread of this process and the returned run is PENDING or RUNNING.
        `detach` is a command that drives the run in a process of its own (the run id is
        appended; it outlives this process), e.g. `lakestack jobs drive`: the run is returned
        PENDING and its runner's output goes to `runner.log` in the run's folder.
        """
        given = {k: str(v) for k, v in (parameters or {}).items()}
        with self._metastore.session() as session:
            job = self._check(session, "jobs.run", name, Privilege.CAN_MANAGE_RUN, {"parameters": given})
        run_id = self._create_run(job, "manual", given)
        assert run_id is not None
        return self._start(job, run_id, wait, executor, parallelism, detach)

    def start_triggered(
        self, name: str, claim: TriggerClaim, *, detach: builtins.list[str] | None = None
    ) -> RunInfo | None:
        """Start a run for a schedule tick or trigger (what the scheduler does; needs
        CAN_MANAGE_RUN), unless that tick started one already: then None. The run goes on in a
        thread of this process, or in the `detach` command's process."""
        with self._metastore.session() as session:
            job = self._check(session, "jobs.run", name, Privilege.CAN_MANAGE_RUN, {"trigger": claim.kind})
        run_id = self._create_run(job, claim.kind, {}, claim)
        if run_id is None:
            return None
        return self._start(job, run_id, False, None, None, detach)

    def _create_run(
        self, job: Job, trigger: str, given: dict[str, str], claim: TriggerClaim | None = None
    ) -> int | None:
        spec = JobSpec.model_validate(job.spec)
        defaults = spec.parameter_defaults()
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            declared = ", ".join(sorted(defaults)) or "none"
            raise InvalidParameter(
                f"Job '{job.name}' has no parameter {', '.join(map(repr, unknown))} (parameters: {declared})."
            )
        code = code_version(Path(job.folder)) if job.folder else code_version()
        run_id = self._store.create_run(
            job,
            trigger,
            spec.runs_as(job.owner),
            self._caller.name,
            {**defaults, **given},
            code,
            [t.task_key for t in spec.tasks],
            claim,
        )
        if run_id is None:
            return None
        started = datetime.now(UTC)
        resolved = {
            key: str(
                substitute(
                    value,
                    lambda ref: job_value(
                        ref.name,
                        job_id=job.id,
                        job_name=job.name,
                        run_id=run_id,
                        repair_count=0,
                        trigger=trigger,
                        start=started,
                    ),
                )
            )
            for key, value in defaults.items()
            if key not in given  # a value given for the run is taken as written
        }
        self._store.update_run(run_id, parameters={**resolved, **given})
        return run_id

    def _start(
        self,
        job: Job,
        run_id: int,
        wait: bool,
        executor: Executor | None,
        parallelism: int | None,
        detach: builtins.list[str] | None,
    ) -> RunInfo:
        if detach:
            _detach(detach, run_id, runs_folder(self._folder) / str(run_id))
            return self.get_run(run_id)
        return self._execute(job, run_id, None, wait, executor, parallelism)

    def drive(
        self,
        run_id: int,
        *,
        executor: Executor | None = None,
        parallelism: int | None = None,
        detach: builtins.list[str] | None = None,
    ) -> RunInfo:
        """Run a PENDING run to its end in this process (what a detached runner does), or in
        the `detach` command's process (needs CAN_MANAGE_RUN)."""
        job = self._check_run("jobs.drive", run_id, Privilege.CAN_MANAGE_RUN)
        run, _ = self._store.row(run_id)
        if run.state != "PENDING":
            raise InvalidRunState(f"Job run {run_id} is {run.state}; only a PENDING run can be started.")
        return self._start(job, run_id, True, executor, parallelism, detach)

    def _execute(
        self,
        job: Job,
        run_id: int,
        only: set[str] | None,
        wait: bool,
        executor: Executor | None,
        parallelism: int | None,
    ) -> RunInfo:
        run, _ = self._store.row(run_id)
        code = run.code_version or {}
        context = RunContext(
            workspace_folder=self._folder.resolve(),
            job_id=job.id,
            job_name=job.name,
            job_folder=Path(job.folder) if job.folder else None,
            principal=run.run_as,
            commit={
                "sha": code.get("mlflow.source.git.commit", ""),
                "branch": code.get("mlflow.source.git.branch", ""),
            },
            jobs=_Starter(self, run.run_as),
        )
        runner = Runner(self._store, context, run_id, executor, parallelism)
        if wait:
            runner.execute(only)
        else:
            threading.Thread(target=runner.execute, args=(only,), name=f"job-run-{run_id}").start()
        return self.get_run(run_id)

    def runs(self, name: str, limit: int = 25) -> builtins.list[RunInfo]:
        """The job's runs, newest first (needs CAN_VIEW)."""
        with self._metastore.session() as session:
            job = self._check(session, "jobs.runs", name, Privilege.CAN_VIEW)
        order = [t["task_key"] for t in job.spec["tasks"]]
        return [self._store.info(run_id, order) for run_id in self._store.runs(job.id, limit)]

    def get_run(self, run_id: int) -> RunInfo:
        """One run with the latest attempt of each task and its notifications' deliveries (needs
        CAN_VIEW on its job)."""
        job = self._check_run("jobs.get_run", run_id, Privilege.CAN_VIEW)
        return self._store.info(run_id, [t["task_key"] for t in job.spec["tasks"]])

    def attempts(self, run_id: int, task_key: str) -> builtins.list[TaskRunInfo]:
        """Every attempt of one task of a run, oldest first (needs CAN_VIEW)."""
        self._check_run("jobs.attempts", run_id, Privilege.CAN_VIEW)
        return self._store.attempts(run_id, task_key)

    def cancel(self, run_id: int) -> RunInfo:
        """Cancel a run (needs CAN_MANAGE_RUN): its runner, in whatever process, kills running
        attempts within a moment and cancels the tasks not started. A finished run is unchanged."""
        self._check_run("jobs.cancel", run_id, Privilege.CAN_MANAGE_RUN)
        self._store.request_cancel(run_id)
        return self.get_run(run_id)

    def repair(
        self,
        run_id: int,
        *,
        wait: bool = True,
        executor: Executor | None = None,
        parallelism: int | None = None,
        detach: builtins.list[str] | None = None,
    ) -> RunInfo:
        """Re-run the tasks of a finished run that did not succeed (FAILED, TIMEDOUT, CANCELED,
        SKIPPED, UPSTREAM_FAILED), keeping the successful ones and their task values (needs
        CAN_MANAGE_RUN). The run's repair_count goes up by one. With `detach` (a drive
        command, see `run_now`), the repair runs in that command's process, given `--repair`."""
        job = self._check_run("jobs.repair", run_id, Privilege.CAN_MANAGE_RUN)
        run, _ = self._store.row(run_id)
        if run.state not in ("FAILED", "TIMEDOUT", "CANCELED"):
            what = "it succeeded: nothing to repair" if run.state == "SUCCESS" else "it has not ended"
            raise InvalidRunState(f"Job run {run_id} is {run.state}; {what}.")
        if detach:
            _detach([*detach, "--repair"], run_id, runs_folder(self._folder) / str(run_id))
            return self.get_run(run_id)
        only = {key for key, row in self._store.latest_tasks(run_id).items() if row.state in REPAIRABLE}
        self._store.update_run(
            run_id, repair_count=run.repair_count + 1, cancel_requested_at=None, error=None
        )
        return self._execute(job, run_id, only, wait, executor, parallelism)

    def notify_ended(self, run_id: int) -> None:
        """Send the end-of-run notifications of a run that ended without its runner (the
        scheduler failed it when the runner died); waits for the deliveries (bounded)."""
        from lakestack.jobs.notify import RunNotifier

        job = self._check_run("jobs.notify", run_id, Privilege.CAN_MANAGE_RUN)
        run, _ = self._store.row(run_id)
        context = RunContext(self._folder.resolve(), job.id, job.name, None, run.run_as, {})
        RunNotifier(self._store, context, run_id, JobSpec.model_validate(run.spec)).ended(run.state)

    def scheduler(self, table_versions: TableVersions, **options: Any) -> Scheduler:
        """A scheduler over every job of the workspace (admins only); see `jobs.scheduler`."""
        from lakestack.jobs.scheduler import Scheduler

        self._access.require_admin(self._caller, "jobs.scheduler", "run the scheduler", "jobs")
        return Scheduler(self, self._store, table_versions, **options)

    def logs(self, run_id: int, task_key: str, attempt: int | None = None) -> dict[str, Any]:
        """stdout and stderr of one attempt of a task (the latest by default; needs CAN_VIEW)."""
        attempts = self.attempts(run_id, task_key)
        if not attempts:
            raise JobError(f"Job run {run_id} has no task '{task_key}'.")
        chosen = (
            attempts[-1] if attempt is None else next((a for a in attempts if a.attempt == attempt), None)
        )
        if chosen is None:
            raise InvalidParameter(
                f"Task '{task_key}' of run {run_id} has no attempt {attempt} "
                f"(attempts: {', '.join(str(a.attempt) for a in attempts)})."
            )
        folder = Path(chosen.log_dir) if chosen.log_dir else None

        def read(name: str) -> str:
            path = folder / name if folder else None
            return path.read_text(errors="replace") if path and path.exists() else ""

        return {
            "run_id": run_id,
            "task_key": task_key,
            "attempt": chosen.attempt,
            "state": chosen.state,
            "log_dir": chosen.log_dir,
            "stdout": read(STDOUT),
            "stderr": read(STDERR),
        }


class _Starter:
    """Starts the runs of run_job tasks as the parent run's principal (checked and audited)."""

    def __init__(self, jobs: Jobs, principal: str) -> None:
        self._jobs = jobs
        self._principal = principal
        self._as: Jobs | None = None

    def _acting(self) -> Jobs:
        if self._as is None:
            parent = self._jobs
            caller = PrincipalStore(parent._metastore).caller(self._principal)
            self._as = Jobs(parent._metastore, parent._securables, parent._access, caller, parent._folder)
        return self._as

    def start(self, job_name: str, parameters: dict[str, str]) -> int:
        return self._acting().run_now(job_name, parameters, wait=False).run_id

    def state(self, run_id: int) -> tuple[str, str | None]:
        # Polled often: read the row directly (starting the run was checked and audited).
        run, _ = self._jobs._store.row(run_id)
        return run.state, run.error

    def cancel(self, run_id: int) -> None:
        self._acting().cancel(run_id)


def _detach(command: builtins.list[str], run_id: int, folder: Path) -> None:
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "runner.log").open("ab") as log:
        subprocess.Popen(
            [*command, str(run_id)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal that started it does not reach it
        )
