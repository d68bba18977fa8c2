"""Inside a job task: the workspace, opened as the run's principal.

```python
from lakestack.jobs import context

def train(catalog: str) -> None:          # a python task's function
    ws = context.workspace()              # acts as the run's principal; lineage records its reads
    df = ws.tables.read(f"{catalog}.churn.features")
```

`Workspace.open()` called by task code instead would act as the workspace admin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lakestack.errors import JobError

if TYPE_CHECKING:
    from lakestack.workspace import Workspace

# Set by the task process (`entrypoint`) for the task it runs.
_opener: Callable[[], Workspace] | None = None


def workspace() -> Workspace:
    """The task's workspace as the run's principal (opened once per task process)."""
    if _opener is None:
        raise JobError(
            "lakestack.jobs.context.workspace() works only inside a job task. "
            "Elsewhere, open one with Workspace.open(path)."
        )
    return _opener()
