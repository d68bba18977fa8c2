"""Retrying a delivery: exponential backoff with jitter, `Retry-After`, a bounded number of attempts.

A channel (webhook, e-mail) makes one attempt at a time and says whether it worked, and if not
whether trying again could help; `deliver` does the waiting and counting, the same for all.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from lakestack.config import NotificationsConfig


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most `max_attempts`, the first retry after about `backoff_seconds`,
    doubling each time up to `max_backoff_seconds` (which also caps a receiver's Retry-After),
    each attempt limited to `timeout_seconds`."""

    max_attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 10.0

    @classmethod
    def from_config(cls, config: NotificationsConfig) -> RetryPolicy:
        """The policy `[notifications]` in workspace.toml sets."""
        return cls(
            config.max_attempts, config.backoff_seconds, config.max_backoff_seconds, config.timeout_seconds
        )

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        backoff = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        # Full-range jitter would sometimes retry at once; half-range still spreads out the
        # retries of many runs that failed against the same receiver at the same moment.
        backoff *= random.uniform(0.5, 1.0)
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.max_backoff_seconds))
        return backoff

    def budget_seconds(self) -> float:
        """An upper bound on the time one message can take, every attempt and wait included."""
        # An HTTP timeout applies per phase (connect, read, ...), so an attempt may take a few.
        waits = sum(
            min(self.max_backoff_seconds, self.backoff_seconds * 2**n) for n in range(self.max_attempts)
        )
        return self.max_attempts * 3 * self.timeout_seconds + waits


@dataclass(frozen=True)
class AttemptOutcome:
    """How one attempt went: `ok`, or an error and whether a retry could help."""

    ok: bool
    status_code: int | None = None
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class DeliveryOutcome:
    """How a message's delivery ended after all its attempts."""

    delivered: bool
    attempts: int
    status_code: int | None
    error: str | None


def deliver(
    attempt: Callable[[], AttemptOutcome],
    policy: RetryPolicy,
    on_attempt: Callable[[int, AttemptOutcome], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryOutcome:
    """Call `attempt` until it works, fails for good, or `policy.max_attempts` are used up;
    `on_attempt(number, outcome)` is told about each attempt (to keep a delivery log current)."""
    number = 0
    while True:
        number += 1
        outcome = attempt()
        if on_attempt is not None:
            on_attempt(number, outcome)
        if outcome.ok or not outcome.retryable or number >= policy.max_attempts:
            error = outcome.error
            if not outcome.ok and outcome.retryable:
                error = f"gave up after {number} attempt(s); last: {error}"
            return DeliveryOutcome(outcome.ok, number, outcome.status_code, error)
        sleep(policy.delay(number, outcome.retry_after))


def scrub(text: str, secrets: tuple[str | None, ...], limit: int = 500) -> str:
    """`text` with every secret replaced by `***`, on one line, at most `limit` characters: what
    may go into a log, a delivery row or an error message."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
