"""The scheduler: fires schedules and triggers, and recovers runs whose runner died.

```python
scheduler = ws.scheduler(detach=None)       # runs start in threads of this process
scheduler.run_once()                        # one pass: what fired, what was recovered
scheduler.serve(stop_event)                 # passes every `poll_seconds` until stopped
```

`lakestack scheduler` runs `serve` with every run in a process of its own, so runs outlive a
scheduler restart. Several schedulers may watch one metastore: a tick is claimed in the same
transaction that creates its run (see `jobs.triggers`), so it starts exactly one run.

Every pass also looks for runs nobody drives any more: a runner on this host whose process is
gone, or one on another host silent for `lease_seconds`. Their running attempts are marked
FAILED ("the runner ... stopped"), and the run is repaired at once when one of those tasks has
retries left (`max_retries`), so a crash costs a retry, not the run. A run created but never
picked up (its runner died before starting) is started.
"""

from __future__ import annotations

import builtins
import errno
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lakestack.errors import LakestackError
from lakestack.jobs.runner import runner_id
from lakestack.jobs.service import JobInfo, Jobs, job_info
from lakestack.jobs.spec import JobSpec
from lakestack.jobs.store import RunStore, TriggerClaim
from lakestack.jobs.triggers import Due, TableVersion, periodic_due, schedule_due, table_update_due

log = logging.getLogger(__name__)

#: Reads the newest version of each named table, acting as the given principal.
TableVersions = Callable[[str, builtins.list[str]], dict[str, TableVersion]]


@dataclass(frozen=True)
class Event:
    """Something a scheduler pass did: `fired` a run, or `failed`, `canceled` (it was queued),
    `repaired` or `started` a run whose runner was lost."""

    action: str
    job_name: str
    run_id: int
    detail: str


class Scheduler:
    """Fires due schedules and triggers as runs, and recovers lost runs; one pass per `run_once`."""

    def __init__(
        self,
        jobs: Jobs,
        store: RunStore,
        table_versions: TableVersions,
        *,
        detach: builtins.list[str] | None = None,
        poll_seconds: float = 1.0,
        table_poll_seconds: float = 10.0,
        lease_seconds: float = 60.0,
        pending_grace_seconds: float = 30.0,
    ) -> None:
        self._jobs = jobs
        self._store = store
        self._table_versions = table_versions
        self._detach = detach
        self.poll_seconds = poll_seconds
        self._table_poll = timedelta(seconds=table_poll_seconds)
        self._lease = timedelta(seconds=lease_seconds)
        self._pending_grace = timedelta(seconds=pending_grace_seconds)
        self._tables_checked: datetime | None = None
        self._warned: set[tuple[str, str]] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # --- passes -------------------------------------------------------------------------

    def run_once(self, now: datetime | None = None) -> builtins.list[Event]:
        """Recover lost runs, then start a run for every due tick; what it did, in order."""
        now = now or datetime.now(UTC)
        events = self._recover()
        check_tables = self._tables_checked is None or now - self._tables_checked >= self._table_poll
        if check_tables:
            self._tables_checked = now
        # Straight from the store: the scheduler (admins only) was audited when it was made;
        # auditing a listing every pass would write a row a second, forever.
        for job in map(job_info, self._store.jobs()):
            try:
                for due in self._due(job, now, check_tables):
                    events.extend(self._fire(job, due))
            except LakestackError as exc:
                self._warn_once(job.name, exc.message)
        return events

    def serve(self, stop: threading.Event, on_event: Callable[[Event], None] | None = None) -> None:
        """Pass every `poll_seconds` until `stop` is set; a failing pass is logged, not fatal."""
        while not stop.is_set():
            try:
                for event in self.run_once():
                    log.info(
                        "%s: job '%s' run %s (%s)", event.action, event.job_name, event.run_id, event.detail
                    )
                    if on_event is not None:
                        on_event(event)
            except Exception:  # the metastore restarting, say: try again next pass
                log.exception("scheduler pass failed; retrying in %s s", self.poll_seconds)
            stop.wait(self.poll_seconds)

    def start(self) -> None:
        """Serve in a background thread (what an embedding server does)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.serve, args=(self._stop,), name="lakestack-scheduler")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread after its current pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # --- firing -------------------------------------------------------------------------

    def _due(self, job: JobInfo, now: datetime, check_tables: bool) -> builtins.list[Due]:
        spec = JobSpec.model_validate(job.spec)
        changed_at = job.updated_at
        found: builtins.list[Due] = []
        if spec.schedule is not None:
            due = schedule_due(spec.schedule, now, changed_at, self._last_tick(job.id, "schedule"))
            found += [due] if due else []
        trigger = spec.trigger
        if trigger is None or trigger.pause_status == "PAUSED":
            return found
        if trigger.periodic is not None:
            due = periodic_due(trigger.periodic, now, changed_at, self._last_tick(job.id, "periodic"))
            found += [due] if due else []
        if trigger.table_update is not None and check_tables:
            versions = self._table_versions(spec.runs_as(job.owner), trigger.table_update.table_names)
            last = self._store.last_trigger(job.id, "table_update")
            due = table_update_due(
                trigger.table_update,
                now,
                versions,
                changed_at,
                last.detail.get("versions") if last else None,
                last.created_at if last else None,
            )
            found += [due] if due else []
        return found

    def _last_tick(self, job_id: int, kind: str) -> datetime | None:
        last = self._store.last_trigger(job_id, kind)
        return last.tick if last else None

    def _fire(self, job: JobInfo, due: Due) -> builtins.list[Event]:
        claim = TriggerClaim(due.kind, due.tick, due.detail, runner_id())
        run = self._jobs.start_triggered(job.name, claim, detach=self._detach)
        if run is None:  # another scheduler (or this one before a restart) fired this tick
            return []
        return [Event("fired", job.name, run.run_id, f"{due.kind} {due.tick.isoformat()}")]

    # --- lost runs ----------------------------------------------------------------------

    def _recover(self) -> builtins.list[Event]:
        events: builtins.list[Event] = []
        for lost in self._store.lost_runs(self._lease, _alive, self._pending_grace):
            try:
                events.extend(self._recover_run(lost.run_id, lost.job_name, lost.state, lost.runner))
            except LakestackError as exc:
                self._warn_once(lost.job_name, f"cannot recover run {lost.run_id}: {exc.message}")
        return events

    def _recover_run(
        self, run_id: int, job_name: str, state: str, runner: str | None
    ) -> builtins.list[Event]:
        if state == "PENDING":
            # Created, never driven: start it (unless another scheduler just did).
            if not self._store.release_runner(run_id, runner):
                return []
            self._jobs.drive(run_id, detach=self._detach)
            return [Event("started", job_name, run_id, "its runner never started")]
        why = f"the runner {runner or '(unknown)'} stopped while the run was {state}"
        running = self._store.fail_lost_run(run_id, runner, why)
        if running is None:
            return []  # it moved on since we looked
        spec = JobSpec.model_validate(self._store.row(run_id)[0].spec)
        retry = [
            key
            for key in running
            if spec.task(key).max_retries == -1
            or len(self._jobs.attempts(run_id, key)) <= spec.task(key).max_retries
        ]
        if not retry:
            self._jobs.notify_ended(run_id)  # the runner that would have sent them is gone
            return [Event("failed" if state == "RUNNING" else "canceled", job_name, run_id, why)]
        self._jobs.repair(run_id, wait=False, detach=self._detach)
        return [Event("repaired", job_name, run_id, f"{why}; retrying {', '.join(retry)}")]

    def _warn_once(self, job_name: str, message: str) -> None:
        if (job_name, message) not in self._warned:
            self._warned.add((job_name, message))
            log.warning("job '%s': %s", job_name, message)


def _alive(runner: str) -> bool | None:
    """Whether the runner `host:pid` is alive: known on this host, None (ask the lease) elsewhere."""
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        # A zombie (dead, not yet reaped by its parent) is gone too; /proc says so, kill() not.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except OSError:
        pass
    try:
        os.kill(int(pid), 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # it exists, as another user's process
    return True
