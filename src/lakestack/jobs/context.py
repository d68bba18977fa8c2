"""Inside a job task: the workspace, opened as the run's principal.

```python
from lakestack.jobs import context

def train(catalog: str) -> None:          # a python task's function
    ws = context.workspace()              # acts as the run's principal; lineage records its reads
    df = ws.tables.read(f"{catalog}.churn.features")
```

`Workspace.open()` called by task code instead would act as the workspace admin.

It works in the task's own process and in processes it starts with its environment, such as a
notebook task's kernel: there the workspace is opened from the task folder's `task.json`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from lakestack.errors import JobError
from lakestack.jobs.task_values import TASK_DIR_ENV

if TYPE_CHECKING:
    from lakestack.workspace import Workspace

# Set by the task process (`entrypoint`) for the task it runs.
_opener: Callable[[], Workspace] | None = None


def workspace() -> Workspace:
    """The task's workspace as the run's principal (opened once per task process)."""
    global _opener
    if _opener is None and os.environ.get(TASK_DIR_ENV):
        _opener = _task_folder_opener(os.environ[TASK_DIR_ENV])
    if _opener is None:
        raise JobError(
            "lakestack.jobs.context.workspace() works only inside a job task. "
            "Elsewhere, open one with Workspace.open(path)."
        )
    return _opener()


def _task_folder_opener(folder: str) -> Callable[[], Workspace]:
    """Open the workspace as the task process does (principal, lineage activity) in a process
    the task started, e.g. a notebook's kernel; it stays open until the process exits."""
    import atexit
    import json
    from contextlib import ExitStack
    from pathlib import Path

    from lakestack.jobs.entrypoint import TaskContext
    from lakestack.jobs.task_values import TASK_FILE

    task = json.loads((Path(folder) / TASK_FILE).read_text())
    stack = ExitStack()
    atexit.register(stack.close)
    return TaskContext(task, stack).workspace
