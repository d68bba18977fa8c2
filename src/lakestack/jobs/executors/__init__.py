"""Where task attempts run: `LocalExecutor` (a process group on this machine) and `RayExecutor`
(the same, inside a Ray task on a cluster).

Every executor passes `tests/integration/test_job_executors.py`.
"""

from __future__ import annotations

from pathlib import Path

from lakestack.jobs.executors.base import Attempt, AttemptResult, Executor

__all__ = ["Attempt", "AttemptResult", "Executor", "executor_for"]


def executor_for(compute: str, workspace_folder: Path | None = None) -> Executor:
    """The executor for a task's `compute` setting; Ray's address comes from the workspace's
    `workspace.toml` (`[jobs] ray_address`) or `LAKESTACK_RAY_ADDRESS`."""
    if compute == "local":
        from lakestack.jobs.executors.local import LocalExecutor

        return LocalExecutor()
    if compute == "ray":
        from lakestack.jobs.executors.ray import RayExecutor, configured_address

        return RayExecutor(address=configured_address(workspace_folder))
    from lakestack.errors import JobError

    raise JobError(f"compute '{compute}' is not known; use compute: local or compute: ray.")
