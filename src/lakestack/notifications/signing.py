"""Webhook signatures: HMAC-SHA256 over the timestamp and the body, checked by receivers.

Every signed webhook carries

```
X-Lakestack-Signature: t=1767225600,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
X-Lakestack-Event: job_run.on_failure
X-Lakestack-Delivery: 3f0c1d2e...        (the same on every retry of one message: deduplicate on it)
```

where `v1` is the hex HMAC-SHA256, keyed with the destination's secret, of
`"<t>." + <the raw request body>`. The timestamp is signed with the body, so a captured request
cannot be replayed later than the receiver's tolerance. A receiver checks it with
`verify_signature` (or the same few lines in any language):

```python
from lakestack.notifications import verify_signature, InvalidSignature

try:
    verify_signature(secret, request.headers["X-Lakestack-Signature"], raw_body)
except InvalidSignature:
    return 401
```
"""

from __future__ import annotations

import hashlib
import hmac
import time

from lakestack.notifications.errors import InvalidSignature

SIGNATURE_HEADER = "X-Lakestack-Signature"
EVENT_HEADER = "X-Lakestack-Event"
DELIVERY_HEADER = "X-Lakestack-Delivery"
#: How old (or how far in the future) a signature's timestamp may be, by default.
DEFAULT_TOLERANCE_SECONDS = 300


def _digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Lakestack-Signature` value for `body`: `t=<unix seconds>,v1=<hex HMAC-SHA256>`."""
    if not secret:
        raise ValueError("a signing secret must not be empty")
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(secret, t, body)}"


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    *,
    now: float | None = None,
) -> int:
    """Check a webhook's `X-Lakestack-Signature` header against its raw `body` (bytes, exactly as
    received) and your copy of the destination's `secret`; returns the signed timestamp.

    Raises InvalidSignature, saying why, when the header is missing or malformed, its timestamp is
    more than `tolerance_seconds` away from now (a replay), or no `v1` matches (a wrong secret or
    a body changed on the way). Several `v1=` entries are accepted (any may match), so a sender
    can sign with an old and a new secret while it is being rotated.
    """
    if not secret:
        raise ValueError("verify_signature needs the destination's secret, got an empty one")
    if not header:
        raise InvalidSignature(f"No {SIGNATURE_HEADER} header: the request is not signed.")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignature(
            f"Malformed {SIGNATURE_HEADER} header: expected 't=<unix seconds>,v1=<hex HMAC-SHA256>'."
        )
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_seconds:
        raise InvalidSignature(
            f"Signature timestamp is {abs(age):.0f} s {'old' if age > 0 else 'in the future'}, beyond "
            f"the {tolerance_seconds:g} s tolerance: a replayed request, or a clock out of sync."
        )
    expected = _digest(secret, timestamp, body)
    # compare_digest: the time taken must not tell an attacker how much of a guess was right.
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise InvalidSignature(
            "Signature does not match: the body was changed, or the secret is not the destination's."
        )
    return timestamp
