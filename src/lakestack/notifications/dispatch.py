"""Sending a notification to its webhooks and e-mail addresses in the background, logged.

```python
notifier = Notifier(metastore, workspace_folder)          # reads [notifications] when first used
notifier.send(Notification("job_run", "17", "on_failure", payload, subject, text),
              webhooks=[WebhookRef(id="ops-alerts")], emails=["oncall@example.com"])
...
notifier.wait()     # before the process exits: every delivery has ended, or is marked FAILED
```

`send` writes one PENDING row per message at once (so the source shows them right away) and
delivers each in a thread of its own: a slow or dead receiver never holds up the caller, and one
receiver never delays another. A message that cannot be sent at all (an unknown destination, a
missing secret variable, no SMTP server) gets a FAILED row naming what is missing and the fix.
`wait` is bounded by the retry policy's budget.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakestack.catalog.metastore import Metastore
from lakestack.config import NotificationsConfig, SmtpConfig, WorkspaceConfig
from lakestack.errors import LakestackError
from lakestack.notifications.log import DELIVERED, FAILED, DeliveryLog
from lakestack.notifications.retry import AttemptOutcome, DeliveryOutcome, RetryPolicy
from lakestack.notifications.signing import DELIVERY_HEADER, EVENT_HEADER
from lakestack.notifications.targets import WebhookRef, WebhookTarget, resolve_webhook

if TYPE_CHECKING:
    from email.message import EmailMessage

log = logging.getLogger(__name__)
_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Notification:
    """One event to announce: its source, the event, the JSON payload webhooks get, and the
    subject and text e-mails get."""

    source_kind: str
    source_id: str
    event: str
    payload: dict[str, Any]
    subject: str
    text: str

    @property
    def event_name(self) -> str:
        """The `X-Lakestack-Event` value, e.g. `job_run.on_failure`."""
        return f"{self.source_kind}.{self.event}"


class Notifier:
    """Delivers notifications per a `[notifications]` config (given, or read from the workspace
    folder's workspace.toml at the first send, so destinations added later are picked up)."""

    def __init__(
        self,
        metastore: Metastore,
        settings: NotificationsConfig | Path,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._log = DeliveryLog(metastore)
        self._settings = settings
        self._environ = environ
        self._threads: list[tuple[threading.Thread, int]] = []
        self._lock = threading.Lock()

    def _config(self) -> NotificationsConfig:
        if isinstance(self._settings, Path):
            self._settings = WorkspaceConfig.load(self._settings).notifications
        return self._settings

    @property
    def _env(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def send(
        self, notification: Notification, webhooks: Sequence[WebhookRef] = (), emails: Sequence[str] = ()
    ) -> list[int]:
        """Log and start delivering one message per webhook and per address; the row ids."""
        if not webhooks and not emails:
            return []
        try:
            config: NotificationsConfig | None = self._config()
            broken = None
        except LakestackError as exc:  # a bad workspace.toml fails the messages, not the caller
            config, broken = None, exc.message
        ids = []
        for ref in webhooks:
            ids.append(self._webhook(notification, ref, config, broken))
        for address in emails:
            ids.append(self._email(notification, address, config, broken))
        return ids

    def _payload(self, notification: Notification, delivery_id: str) -> dict[str, Any]:
        return {**notification.payload, "delivery_id": delivery_id}

    def _webhook(
        self,
        notification: Notification,
        ref: WebhookRef,
        config: NotificationsConfig | None,
        broken: str | None,
    ) -> int:
        delivery_id = uuid.uuid4().hex
        payload = self._payload(notification, delivery_id)
        if config is None:
            return self._failed(notification, "webhook", ref.label(), payload, broken or "no settings")
        try:
            target = resolve_webhook(config, ref, self._env)
        except LakestackError as exc:
            return self._failed(notification, "webhook", ref.label(), payload, exc.message)
        row = self._log.add(
            notification.source_kind,
            notification.source_id,
            notification.event,
            "webhook",
            target.log_label(),
            payload,
        )
        body = json.dumps(payload, separators=(",", ":")).encode()
        policy = RetryPolicy.from_config(config)
        self._start(row, lambda: self._post(row, target, notification, delivery_id, body, policy))
        return row

    def _email(
        self, notification: Notification, address: str, config: NotificationsConfig | None, broken: str | None
    ) -> int:
        delivery_id = uuid.uuid4().hex
        payload = self._payload(notification, delivery_id)
        smtp = config.smtp if config is not None else None
        if config is None or smtp is None:
            why = broken or (
                "No SMTP server is configured for e-mail notifications: add [notifications.smtp] "
                "(host, sender, ...) to workspace.toml."
            )
            return self._failed(notification, "email", address, payload, why)
        password = None
        if smtp.password_env is not None:
            password = self._env.get(smtp.password_env)
            if not password:
                why = (
                    f"[notifications.smtp] password_env names the environment variable "
                    f"{smtp.password_env}, which is not set: set it in the environment of the process "
                    "that runs the job."
                )
                return self._failed(notification, "email", address, payload, why)
        from lakestack.notifications.mail import build_message

        message = build_message(
            smtp,
            address,
            notification.subject,
            notification.text,
            {EVENT_HEADER: notification.event_name, DELIVERY_HEADER: delivery_id},
        )
        row = self._log.add(
            notification.source_kind, notification.source_id, notification.event, "email", address, payload
        )
        policy = RetryPolicy.from_config(config)
        self._start(row, lambda: self._mail(row, smtp, password, message, policy))
        return row

    def _failed(
        self, notification: Notification, channel: str, destination: str, payload: dict[str, Any], why: str
    ) -> int:
        log.warning("notification %s to %s not sent: %s", notification.event_name, destination, why)
        return self._log.add(
            notification.source_kind,
            notification.source_id,
            notification.event,
            channel,
            destination,
            payload,
            state=FAILED,
            error=why,
        )

    # --- delivering, in threads ---------------------------------------------------------

    def _start(self, row: int, work: Callable[[], DeliveryOutcome]) -> None:
        def run() -> None:
            try:
                outcome: DeliveryOutcome = work()
            except Exception as exc:  # a bug here must not leave the row PENDING forever
                # The type only: an unexpected exception's message might quote a URL or a secret.
                log.error("notification delivery %s failed: %s", row, type(exc).__name__)
                self._record(row, DeliveryOutcome(False, 0, None, f"internal error: {type(exc).__name__}"))
                return
            self._record(row, outcome)

        # Daemon: `wait` bounds how long a process stays for its deliveries, not the interpreter.
        thread = threading.Thread(target=run, name=f"lakestack-notify-{row}", daemon=True)
        with self._lock:
            self._threads.append((thread, row))
        thread.start()

    def _on_attempt(self, row: int) -> Callable[[int, AttemptOutcome], None]:
        def record(number: int, outcome: AttemptOutcome) -> None:
            self._log.update(row, attempts=number, status_code=outcome.status_code, error=outcome.error)

        return record

    def _record(self, row: int, outcome: DeliveryOutcome) -> None:
        state = DELIVERED if outcome.delivered else FAILED
        try:
            self._log.update(
                row,
                attempts=outcome.attempts,
                status_code=outcome.status_code,
                error=outcome.error,
                state=state,
            )
        except Exception:  # the metastore went away: say so where someone may look
            log.exception("could not record the end of notification delivery %s", row)
        if not outcome.delivered:
            log.warning("notification delivery %s failed: %s", row, outcome.error)

    def _post(
        self,
        row: int,
        target: WebhookTarget,
        notification: Notification,
        delivery_id: str,
        body: bytes,
        policy: RetryPolicy,
    ) -> DeliveryOutcome:
        from lakestack.notifications.webhook import post_webhook

        return post_webhook(target, notification.event_name, delivery_id, body, policy, self._on_attempt(row))

    def _mail(
        self, row: int, smtp: SmtpConfig, password: str | None, message: EmailMessage, policy: RetryPolicy
    ) -> DeliveryOutcome:
        from lakestack.notifications.mail import send_email

        return send_email(smtp, password, message, policy, self._on_attempt(row))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every delivery started so far to end (at most `timeout` seconds, by default the
        retry policy's budget); deliveries still going are marked FAILED. True if all ended."""
        with self._lock:
            threads, self._threads = self._threads, []
        if not threads:
            return True
        if timeout is None:
            config = self._settings if isinstance(self._settings, NotificationsConfig) else None
            budget = RetryPolicy.from_config(config).budget_seconds() if config else 60.0
            timeout = budget + _GRACE_SECONDS
        deadline = time.monotonic() + timeout
        late = []
        for thread, row in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                late.append(row)
        if late:
            self._log.give_up(late, f"gave up: still not delivered after waiting {timeout:.0f} s")
        return not late
