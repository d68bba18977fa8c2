"""Notifications: signed webhooks and e-mail, retried, with a delivery log.

The foundation jobs (and later alerts) send through: `Notifier` delivers a `Notification` to
webhooks and addresses in the background and records each message in `notification_deliveries`
(`DeliveryLog`); `verify_signature` is for receivers checking a webhook's
`X-Lakestack-Signature` (see `lakestack.notifications.signing` for the scheme). Settings live in
`[notifications]` of workspace.toml (see `lakestack.config`); secrets come from the environment.

Only `lakestack.catalog`, `lakestack.config` and `lakestack.errors` are imported from here.
"""

from lakestack.notifications.dispatch import Notification, Notifier
from lakestack.notifications.errors import (
    DestinationNotFound,
    InvalidSignature,
    NotificationError,
    NotificationNotConfigured,
)
from lakestack.notifications.log import DeliveryInfo, DeliveryLog
from lakestack.notifications.retry import RetryPolicy
from lakestack.notifications.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    sign,
    verify_signature,
)
from lakestack.notifications.targets import WebhookRef

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "DeliveryInfo",
    "DeliveryLog",
    "DestinationNotFound",
    "InvalidSignature",
    "Notification",
    "NotificationError",
    "NotificationNotConfigured",
    "Notifier",
    "RetryPolicy",
    "WebhookRef",
    "sign",
    "verify_signature",
]
