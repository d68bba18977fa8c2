"""Where task attempts run: `LocalExecutor` (a process group on this machine); Ray comes next.

Every executor passes `tests/integration/test_job_executors.py`.
"""

from __future__ import annotations

from lakestack.jobs.executors.base import Attempt, AttemptResult, Executor

__all__ = ["Attempt", "AttemptResult", "Executor", "executor_for"]


def executor_for(compute: str) -> Executor:
    """The executor for a task's `compute` setting."""
    if compute == "local":
        from lakestack.jobs.executors.local import LocalExecutor

        return LocalExecutor()
    from lakestack.errors import JobError

    raise JobError(f"compute '{compute}' is not available yet; use compute: local.")
