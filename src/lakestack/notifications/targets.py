"""Where a webhook goes and how it is signed, from `[notifications]` in workspace.toml and the
environment. Secrets are read here, at send time, and never leave the returned target's fields.

A webhook names either a destination `id` (its url, or `url_env`, and `secret_env` are in
`[notifications.destinations.<id>]`) or an inline `url`, which is signed with the secret in the
workspace-wide `[notifications] secret_env`; without one it is sent unsigned, and its delivery
log records it as `<url> (unsigned)`. A `secret_env` that is configured but not set in the
environment fails the delivery rather than sending it unsigned.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from lakestack.config import NotificationsConfig
from lakestack.notifications.errors import DestinationNotFound, NotificationNotConfigured

#: The longest destination text a delivery row keeps.
DESTINATION_CHARS = 300


@dataclass(frozen=True)
class WebhookRef:
    """A webhook as a job or an alert names it: a destination `id`, or an inline `url`."""

    id: str | None = None
    url: str | None = None

    def label(self) -> str:
        """What a delivery log may show: the id, or the URL without its query string."""
        if self.id is not None:
            return self.id
        return redact_url(self.url or "")


@dataclass(frozen=True)
class WebhookTarget:
    """A resolved webhook: the URL to post to, the signing secret (None: unsigned), and the label
    the delivery log records (never the secret, never a query string or a secret URL)."""

    label: str
    url: str = field(repr=False)
    secret: str | None = field(repr=False)

    @property
    def signed(self) -> bool:
        return self.secret is not None

    def log_label(self) -> str:
        """The label, saying so when the webhook goes out unsigned."""
        return self.label if self.signed else f"{self.label} (unsigned)"

    def secrets(self) -> tuple[str | None, ...]:
        """Every text that must be scrubbed from anything this target's delivery records."""
        return (self.secret, self.url, urlsplit(self.url).query or None)


def redact_url(url: str) -> str:
    """`scheme://host[:port]/path` of a URL: no user, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))[:DESTINATION_CHARS]


def _env(environ: Mapping[str, str], name: str, what: str) -> str:
    value = environ.get(name)
    if not value:
        raise NotificationNotConfigured(
            f"{what} names the environment variable {name}, which is not set: set it in the "
            "environment of the process that runs the job (lakestack jobs run, the scheduler)."
        )
    return value


def resolve_webhook(
    config: NotificationsConfig, ref: WebhookRef, environ: Mapping[str, str] | None = None
) -> WebhookTarget:
    """The URL and secret for `ref`; DestinationNotFound for an id the workspace does not configure,
    NotificationNotConfigured for a secret or URL variable that is not set."""
    env = os.environ if environ is None else environ
    if ref.id is not None:
        destination = config.destinations.get(ref.id)
        if destination is None:
            known = ", ".join(sorted(config.destinations)) or "none"
            raise DestinationNotFound(
                f"Notification destination '{ref.id}' is not configured (configured: {known}). Add "
                f"[notifications.destinations.{ref.id}] with url (or url_env) and secret_env to "
                "workspace.toml."
            )
        what = f"Destination '{ref.id}'"
        url = destination.url or _env(env, destination.url_env or "", f"{what}'s url_env")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotificationNotConfigured(
                f"{what}'s url_env {destination.url_env} does not hold an http:// or https:// URL."
            )
        secret = _env(env, destination.secret_env, f"{what}'s secret_env") if destination.secret_env else None
        return WebhookTarget(ref.id, url, secret)
    if ref.url is None:
        raise ValueError("a webhook needs an id or a url")
    secret = _env(env, config.secret_env, "[notifications] secret_env") if config.secret_env else None
    return WebhookTarget(redact_url(ref.url), ref.url, secret)
