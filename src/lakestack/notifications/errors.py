"""Errors of the notifications area (a sub-root callers can catch, like the others in `errors`)."""

from __future__ import annotations

from lakestack.errors import InvalidParameter, LakestackError, NotFound, Unauthenticated


class NotificationError(LakestackError):
    """Problems with notifications: destinations, signatures, delivery settings."""


class InvalidSignature(NotificationError, Unauthenticated):
    """A webhook's `X-Lakestack-Signature` is missing, malformed, stale or does not match."""

    code = "INVALID_SIGNATURE"


class DestinationNotFound(NotificationError, NotFound):
    """A webhook names a destination id that `workspace.toml` does not configure."""

    code = "DESTINATION_NOT_FOUND"


class NotificationNotConfigured(NotificationError, InvalidParameter):
    """A notification needs a setting or an environment variable that is missing."""

    code = "NOTIFICATION_NOT_CONFIGURED"
