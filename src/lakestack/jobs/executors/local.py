"""Run each task attempt as a process group on this machine.

The attempt's process starts a new session, so it and everything it spawns share one process
group: a timeout or a cancel kills the whole group (SIGTERM, then SIGKILL after a grace period),
and processes the task left behind are killed when it ends, so nothing outlives its attempt.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from lakestack.jobs.executors.base import (
    ENTRYPOINT,
    RUNNER_PID_ENV,
    STDERR,
    STDOUT,
    Attempt,
    AttemptResult,
    Ended,
    Executor,
    failure,
)

POLL_SECONDS = 0.02


class LocalExecutor(Executor):
    """Attempts as local process groups; `grace_seconds` between SIGTERM and SIGKILL."""

    name = "local"

    def __init__(self, grace_seconds: float = 5.0) -> None:
        self.grace_seconds = grace_seconds

    def run(self, attempt: Attempt, stop: Callable[[], bool]) -> AttemptResult:
        """Start the attempt's process group, wait for it, and kill it on timeout or stop."""
        directory = attempt.directory
        inherited = {k: v for k, v in os.environ.items() if k not in attempt.hidden_env}
        env = {**inherited, **attempt.env, RUNNER_PID_ENV: str(os.getpid())}
        with (directory / STDOUT).open("wb") as out, (directory / STDERR).open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", ENTRYPOINT, str(directory)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=attempt.cwd,
                env=env,
                start_new_session=True,
            )
        deadline = None if not attempt.timeout_seconds else time.monotonic() + attempt.timeout_seconds
        killed: Ended | None = None
        try:
            while True:
                try:
                    code = process.wait(timeout=POLL_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if deadline is not None and time.monotonic() >= deadline:
                    killed = "TIMEDOUT"
                elif stop():
                    killed = "CANCELED"
                if killed is not None:
                    code = self._kill_group(process)
                    break
        finally:
            # Whatever the task started and left running goes with it.
            _signal_group(process.pid, signal.SIGKILL)
            if process.poll() is None:  # an error above, not an end: do not leave a zombie
                process.kill()
                process.wait()
        if killed == "TIMEDOUT":
            return AttemptResult("TIMEDOUT", code, f"timed out after {attempt.timeout_seconds:g} s")
        if killed == "CANCELED":
            return AttemptResult("CANCELED", code, "canceled")
        if code == 0:
            return AttemptResult("SUCCESS", 0)
        return AttemptResult("FAILED", code, failure(directory, code))

    def _kill_group(self, process: subprocess.Popen[bytes]) -> int:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout=self.grace_seconds)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            return process.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(pgid, sig)
