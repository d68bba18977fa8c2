"""Posting one webhook: a signed JSON POST, retried on 429, 5xx and connection errors.

A 2xx answer delivers it. 429 and 5xx answers and connection errors or timeouts are retried
with backoff (`Retry-After` is honoured, up to the policy's cap); any other answer (a 4xx, or a
3xx: redirects are not followed, so a signed body never goes where it was not configured to)
fails it at once. Every attempt is signed afresh, so a late retry is not refused as stale.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import UTC, datetime

from lakestack.notifications.retry import AttemptOutcome, DeliveryOutcome, RetryPolicy, deliver, scrub
from lakestack.notifications.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign
from lakestack.notifications.targets import WebhookTarget

USER_AGENT = "lakestack-webhooks/1"
_BODY_CHARS = 200


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header as seconds from now: delta-seconds or an HTTP date; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def post_webhook(
    target: WebhookTarget,
    event: str,
    delivery_id: str,
    body: bytes,
    policy: RetryPolicy,
    on_attempt: Callable[[int, AttemptOutcome], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryOutcome:
    """POST `body` (JSON) to the target, signed when it has a secret, retrying per `policy`."""
    import httpx  # only processes that send webhooks pay for importing it

    secrets = target.secrets()

    def attempt(client: httpx.Client) -> AttemptOutcome:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery_id,
        }
        if target.secret is not None:
            headers[SIGNATURE_HEADER] = sign(target.secret, body)
        try:
            response = client.post(target.url, content=body, headers=headers)
        except httpx.TransportError as exc:  # refused, reset, timed out, TLS: worth another try
            return AttemptOutcome(False, None, scrub(f"{type(exc).__name__}: {exc}", secrets), True)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:  # retrying will not help
            return AttemptOutcome(False, None, scrub(f"{type(exc).__name__}: {exc}", secrets))
        code = response.status_code
        if 200 <= code < 300:
            return AttemptOutcome(True, code)
        text = scrub(response.text, secrets, _BODY_CHARS) if response.content else ""
        error = f"HTTP {code}" + (f": {text}" if text else "")
        if 300 <= code < 400:
            error += " (redirects are not followed: configure the final URL)"
        retryable = code == 429 or code >= 500
        wait = retry_after_seconds(response.headers.get("Retry-After")) if retryable else None
        return AttemptOutcome(False, code, error, retryable, wait)

    with httpx.Client(timeout=policy.timeout_seconds, follow_redirects=False) as client:
        return deliver(lambda: attempt(client), policy, on_attempt, sleep)
