"""The states of job runs and task runs, and the only moves between them.

```
task run:  PENDING -> QUEUED -> RUNNING -> SUCCESS | FAILED | TIMEDOUT | CANCELED
           PENDING | QUEUED  -> SKIPPED | UPSTREAM_FAILED | CANCELED
job run:   PENDING -> QUEUED -> RUNNING -> SUCCESS | FAILED | TIMEDOUT | CANCELED
           PENDING | QUEUED  -> CANCELED
```

A retry or a repair never moves a finished task run back: it adds a task run with the next
attempt number. `transition` is the one place a state changes, and it refuses anything else.
"""

from __future__ import annotations

from typing import Literal

from lakestack.errors import InvalidRunState

State = Literal[
    "PENDING",
    "QUEUED",
    "RUNNING",
    "SUCCESS",
    "FAILED",
    "TIMEDOUT",
    "CANCELED",
    "SKIPPED",
    "UPSTREAM_FAILED",
]

TASK_TERMINAL: frozenset[str] = frozenset(
    {"SUCCESS", "FAILED", "TIMEDOUT", "CANCELED", "SKIPPED", "UPSTREAM_FAILED"}
)
JOB_TERMINAL: frozenset[str] = frozenset({"SUCCESS", "FAILED", "TIMEDOUT", "CANCELED"})
#: Task states a repair runs again.
REPAIRABLE: frozenset[str] = frozenset({"FAILED", "TIMEDOUT", "CANCELED", "SKIPPED", "UPSTREAM_FAILED"})
#: Task states that count as a failure for `run_if` and for the job's result.
FAILED_STATES: frozenset[str] = frozenset({"FAILED", "TIMEDOUT", "UPSTREAM_FAILED"})

_ENDED = {"SUCCESS", "FAILED", "TIMEDOUT", "CANCELED"}
TASK_MOVES: dict[str, frozenset[str]] = {
    "PENDING": frozenset({"QUEUED", "RUNNING", "SKIPPED", "UPSTREAM_FAILED", "CANCELED"}),
    "QUEUED": frozenset({"RUNNING", "SKIPPED", "UPSTREAM_FAILED", "CANCELED"}),
    "RUNNING": frozenset(_ENDED),
}
JOB_MOVES: dict[str, frozenset[str]] = {
    "PENDING": frozenset({"QUEUED", "RUNNING", "CANCELED"}),
    "QUEUED": frozenset({"RUNNING", "CANCELED"}),
    "RUNNING": frozenset(_ENDED),
    # A repair re-opens a finished run (its repair_count goes up).
    **{state: frozenset({"RUNNING"}) for state in ("FAILED", "TIMEDOUT", "CANCELED")},
}


def transition(what: Literal["job run", "task run"], name: str, current: str, new: str) -> str:
    """Return `new` if `what` may move from `current` to it; InvalidRunState otherwise."""
    moves = JOB_MOVES if what == "job run" else TASK_MOVES
    if new not in moves.get(current, frozenset()):
        allowed = ", ".join(sorted(moves.get(current, frozenset()))) or "none: it has ended"
        raise InvalidRunState(
            f"{what.capitalize()} {name} is {current} and cannot become {new} (allowed moves: {allowed})."
        )
    return new
