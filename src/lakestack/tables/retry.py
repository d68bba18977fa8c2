"""Retrying Delta commits that lost a race with another writer."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from deltalake.exceptions import CommitFailedError

from lakestack.errors import CommitConflict

T = TypeVar("T")


def with_commit_retry(
    operation: Callable[[], T],
    target: str,
    attempts: int = 60,
    base_delay: float = 0.02,
    max_delay: float = 1.0,
) -> T:
    """Run `operation` (which must re-read the table itself) until its commit wins.

    Backoff is exponential with full jitter, so writers that collided spread out instead of
    colliding again in lock step.
    """
    for attempt in range(attempts):
        try:
            return operation()
        except CommitFailedError as exc:
            if attempt == attempts - 1:
                raise CommitConflict(
                    f"Gave up writing '{target}' after {attempts} commit conflicts with concurrent "
                    f"writers ({str(exc).splitlines()[0]}). Retry later or reduce concurrent writers."
                ) from exc
            time.sleep(random.uniform(0, min(max_delay, base_delay * 2**attempt)))
    raise AssertionError("unreachable")
