"""The executor contract: run one task attempt to its end, and stop it when told to.

An attempt is a folder (`<workspace>/jobs/runs/<run_id>/<task_key>/attempt-<n>/`) holding
`task.json`, written by the runner. The executor runs `python -m lakestack.jobs.entrypoint
<folder>` somewhere with `env` added to its environment, sends its output to `stdout.log` and
`stderr.log` in the folder, and reports how it ended. Task values and outputs come back as files
in the folder (`values.json`, `output.json`), so an executor moves no results itself: a remote
executor needs the folder on storage both sides see, and nothing else.

An executor must stop an attempt, with every process it started, when `timeout_seconds` pass
(-> TIMEDOUT) or when `stop()` turns true (-> CANCELED), and must report a process killed from
outside as FAILED naming the signal.
"""

from __future__ import annotations

import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

ENTRYPOINT = "lakestack.jobs.entrypoint"
STDOUT = "stdout.log"
STDERR = "stderr.log"
ERROR_FILE = "error.txt"
#: The runner's pid, for a task process started as its child: the task ends when it is gone.
RUNNER_PID_ENV = "LAKESTACK_RUNNER_PID"

Ended = Literal["SUCCESS", "FAILED", "TIMEDOUT", "CANCELED"]


@dataclass(frozen=True)
class Attempt:
    """One attempt of one task, ready to start."""

    run_id: int
    task_key: str
    number: int
    directory: Path
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    timeout_seconds: float | None = None
    #: Variables of the runner's environment the task must not inherit (notification secrets).
    hidden_env: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AttemptResult:
    """How an attempt ended: its state, the process's exit code, and why it failed (if it did)."""

    state: Ended
    exit_code: int | None = None
    error: str | None = None


class Executor(ABC):
    """Runs task attempts. One instance serves many attempts, from several threads at once."""

    name: ClassVar[str]

    @abstractmethod
    def run(self, attempt: Attempt, stop: Callable[[], bool]) -> AttemptResult:
        """Run `attempt` to its end (blocking); kill it on timeout or once `stop()` is true."""

    def close(self) -> None:  # noqa: B027 - optional: most executors hold nothing
        """Release what the executor holds (connections, pools)."""


def failure(directory: Path, exit_code: int | None) -> str:
    """Why an attempt failed: the task's own error line, else the signal or the stderr tail."""
    written = directory / ERROR_FILE
    if written.exists():
        text = written.read_text().strip()
        if text:
            return text
    if exit_code is not None and exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"the task process was killed by {name}"
    tail = _tail(directory / STDERR)
    return f"the task process exited with code {exit_code}" + (f": {tail}" if tail else "")


def _tail(path: Path, lines: int = 5) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 4000))
        text = handle.read().decode(errors="replace")
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())
