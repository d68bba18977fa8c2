"""A job run's notifications: the job's `email_notifications` and `webhook_notifications`.

| event      | sent when the run                                                     |
|------------|-----------------------------------------------------------------------|
| on_start   | becomes RUNNING (a repair starts it again, so it is sent again)       |
| on_success | ends SUCCESS                                                          |
| on_failure | ends FAILED, TIMEDOUT or CANCELED (also canceled or skipped while queued) |

CANCELED counts as a failure the way Databricks counts it by default (its
`no_alert_for_canceled_runs` is off unless set). Webhooks get a JSON payload (`run_payload`),
e-mails a plain-text summary. Deliveries run in the background, recorded on the run
(`RunInfo.notifications`); they never change the run's state, and a dead receiver never fails a
job. Before the runner returns, it waits for them to be delivered or given up (bounded by the
retry policy in `[notifications]`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from lakestack.jobs.spec import JobSpec
from lakestack.jobs.store import RunInfo, RunStore
from lakestack.notifications import Notification, Notifier, WebhookRef

if TYPE_CHECKING:
    from lakestack.jobs.runner import RunContext

SOURCE_KIND = "job_run"
EVENTS = ("on_start", "on_success", "on_failure")
log = logging.getLogger(__name__)


def event_for(state: str) -> str | None:
    """The event a run ending in `state` announces (None for a state that is not an end)."""
    if state == "SUCCESS":
        return "on_success"
    if state in ("FAILED", "TIMEDOUT", "CANCELED"):
        return "on_failure"
    return None


def run_payload(event: str, job_id: int, run: RunInfo) -> dict[str, Any]:
    """The JSON body a webhook gets about `run` (a delivery adds its `delivery_id`)."""
    duration = run.duration_seconds
    return {
        "event": event,
        "job_id": job_id,
        "job_name": run.job_name,
        "run_id": run.run_id,
        "state": run.state,
        "error": run.error,
        "trigger": run.trigger,
        "run_as": run.run_as,
        "parameters": dict(run.parameters),
        "repair_count": run.repair_count,
        "start_time": run.start_time.isoformat() if run.start_time else None,
        "end_time": run.end_time.isoformat() if run.end_time else None,
        "duration_seconds": None if duration is None else round(duration, 3),
        "tasks": [
            {"task_key": t.task_key, "state": t.state, "attempt": t.attempt, "error": t.error}
            for t in run.tasks
        ],
    }


def run_email(event: str, job_id: int, run: RunInfo) -> tuple[str, str]:
    """The subject and plain-text body of an e-mail about `run`."""
    what = "started" if event == "on_start" else run.state
    subject = f"[lakestack] Job '{run.job_name}' run {run.run_id} {what}"
    duration = run.duration_seconds
    lines = [
        f"Job:        {run.job_name} (id {job_id})",
        f"Run:        {run.run_id} (trigger {run.trigger}, as {run.run_as}, repairs {run.repair_count})",
        f"State:      {run.state}",
    ]
    if run.error:
        lines.append(f"Error:      {run.error}")
    lines += [
        f"Started:    {run.start_time.isoformat() if run.start_time else '-'}",
        f"Ended:      {run.end_time.isoformat() if run.end_time else '-'}",
        f"Duration:   {'-' if duration is None else f'{duration:.1f} s'}",
    ]
    if run.parameters:
        lines.append("Parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(run.parameters.items())))
    lines += ["", "Tasks:"]
    width = max((len(t.task_key) for t in run.tasks), default=0)
    for task in run.tasks:
        lines.append(f"  {task.task_key:<{width}}  {task.state:<15} {task.error or ''}".rstrip())
    lines += ["", f"Details: lakestack jobs get-run {run.run_id}"]
    return subject, "\n".join(lines) + "\n"


class RunNotifier:
    """Sends one run's notifications; costs nothing for a job that has none."""

    def __init__(self, store: RunStore, context: RunContext, run_id: int, spec: JobSpec) -> None:
        self._store = store
        self._context = context
        self._run_id = run_id
        self._spec = spec
        self._notifier: Notifier | None = None

    def _recipients(self, event: str) -> tuple[list[WebhookRef], list[str]]:
        hooks = getattr(self._spec.webhook_notifications, event)
        emails = getattr(self._spec.email_notifications, event)
        return [WebhookRef(id=h.id, url=h.url) for h in hooks], list(emails)

    def event(self, event: str) -> None:
        """Start sending the run's `event` notifications (in the background); never raises."""
        webhooks, emails = self._recipients(event)
        if not webhooks and not emails:
            return
        try:
            if self._notifier is None:
                # Read workspace.toml now, not when the workspace opened: a destination added
                # since is used, and a long-lived process (a scheduler) sees edits.
                self._notifier = Notifier(self._store.metastore, self._context.workspace_folder)
            order = [t.task_key for t in self._spec.tasks]
            run = self._store.info(self._run_id, order)
            subject, text = run_email(event, self._context.job_id, run)
            payload = run_payload(event, self._context.job_id, run)
            notification = Notification(SOURCE_KIND, str(self._run_id), event, payload, subject, text)
            self._notifier.send(notification, webhooks, emails)
        except Exception:  # a notification problem must never change how the run ends
            log.exception("job run %s: could not send its %s notifications", self._run_id, event)

    def ended(self, state: str) -> str:
        """Send the notifications of a run that ended in `state`, then wait (bounded) for every
        delivery of the run to finish or give up; returns `state`."""
        event = event_for(state)
        if event is not None:
            self.event(event)
        if self._notifier is not None:
            try:
                self._notifier.wait()
            except Exception:
                log.exception("job run %s: waiting for its notifications failed", self._run_id)
        return state
