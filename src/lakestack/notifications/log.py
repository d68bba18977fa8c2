"""The delivery log: one `notification_deliveries` row per message (a webhook call or an e-mail),
kept current attempt by attempt.

```
state:  PENDING -> DELIVERED | FAILED      (FAILED at once when there was nothing to send to)
```

A row names its source (`job_run` and the run id; later `alert`), the event, the channel
(`webhook`, `email`), the destination (a destination id, a URL without its query string, or an
e-mail address; never a secret), the attempts so far, the last status code (HTTP or SMTP) and
the last error, and the payload that was sent.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import NotificationDelivery
from lakestack.notifications.targets import DESTINATION_CHARS

PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"
_ERROR_CHARS = 1000


@dataclass(frozen=True)
class DeliveryInfo:
    """One notification and how its delivery went."""

    id: int
    event: str
    channel: str
    destination: str
    state: str
    attempts: int
    status_code: int | None
    error: str | None
    created_at: datetime
    updated_at: datetime


def _info(row: NotificationDelivery) -> DeliveryInfo:
    return DeliveryInfo(
        row.id,
        row.event,
        row.channel,
        row.destination,
        row.state,
        row.attempts,
        row.status_code,
        row.error,
        row.created_at,
        row.updated_at,
    )


def _error(text: str | None) -> str | None:
    return None if text is None else text[:_ERROR_CHARS]


class DeliveryLog:
    """Reads and writes delivery rows (unchecked: callers check who may see their source)."""

    def __init__(self, metastore: Metastore) -> None:
        self._metastore = metastore

    def add(
        self,
        source_kind: str,
        source_id: str,
        event: str,
        channel: str,
        destination: str,
        payload: dict[str, Any],
        *,
        state: str = PENDING,
        error: str | None = None,
    ) -> int:
        """A new row (PENDING, or FAILED with `error` when there is nothing to send to); its id."""
        with self._metastore.session() as session:
            row = NotificationDelivery(
                source_kind=source_kind,
                source_id=source_id,
                event=event,
                channel=channel,
                destination=destination[:DESTINATION_CHARS],
                state=state,
                attempts=0,
                error=_error(error),
                payload=payload,
            )
            session.add(row)
            session.flush()
            return row.id

    def update(
        self,
        delivery_id: int,
        *,
        attempts: int,
        status_code: int | None,
        error: str | None,
        state: str | None = None,
    ) -> None:
        """Record an attempt (and, with `state`, the delivery's end)."""
        with self._metastore.session() as session:
            row = session.get(NotificationDelivery, delivery_id)
            if row is None:  # its source was deleted meanwhile: nothing left to record on
                return
            row.attempts = attempts
            row.status_code = status_code
            row.error = _error(error)
            if state is not None:
                row.state = state
            row.updated_at = datetime.now(UTC)

    def give_up(self, delivery_ids: Iterable[int], why: str) -> None:
        """Mark the rows still PENDING among `delivery_ids` FAILED, saying `why`."""
        ids = list(delivery_ids)
        if not ids:
            return
        with self._metastore.session() as session:
            for row in session.scalars(
                select(NotificationDelivery).where(
                    NotificationDelivery.id.in_(ids), NotificationDelivery.state == PENDING
                )
            ):
                row.state = FAILED
                row.error = _error(f"{why}" + (f"; last: {row.error}" if row.error else ""))
                row.updated_at = datetime.now(UTC)

    def list(self, source_kind: str, source_id: str) -> builtins.list[DeliveryInfo]:
        """The deliveries about one source, oldest first."""
        with self._metastore.session() as session:
            rows = session.scalars(
                select(NotificationDelivery)
                .where(
                    NotificationDelivery.source_kind == source_kind,
                    NotificationDelivery.source_id == source_id,
                )
                .order_by(NotificationDelivery.id)
            )
            return [_info(row) for row in rows]

    def payload(self, delivery_id: int) -> dict[str, Any] | None:
        """The payload a delivery sent (None if there is no such delivery)."""
        with self._metastore.session() as session:
            row = session.get(NotificationDelivery, delivery_id)
            return None if row is None else dict(row.payload or {})

    def delete(self, source_kind: str, source_ids: Iterable[str]) -> None:
        """Forget the deliveries about the given sources (their source is being deleted)."""
        ids = builtins.list(source_ids)
        if not ids:
            return
        with self._metastore.session() as session:
            session.execute(
                delete(NotificationDelivery).where(
                    NotificationDelivery.source_kind == source_kind, NotificationDelivery.source_id.in_(ids)
                )
            )
