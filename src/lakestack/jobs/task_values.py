"""Task values: small JSON results a task hands to the tasks after it in the same run.

```python
from lakestack.jobs import task_values

task_values.set("model_uri", "models:/dev.churn.model/3")        # in task `train`
uri = task_values.get("train", "model_uri")                       # in a task downstream of it
```

Settings read them too: `{{tasks.train.values.model_uri}}`. Values are stored with the task
run, so a repaired run still sees the values of the tasks it kept.

Inside a job task the runner says where the task's attempt folder is (`LAKESTACK_TASK_DIR`):
`set` rewrites `values.json` there (the runner persists it when the attempt ends) and `get`
reads the upstream values the runner wrote into `task.json`. Outside a job (a function run by
hand, a test), `set` keeps values in memory and `get` reads them back, or returns `default`.
Works the same whatever executor ran the process.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from lakestack.errors import TaskValueError

TASK_DIR_ENV = "LAKESTACK_TASK_DIR"
VALUES_FILE = "values.json"
TASK_FILE = "task.json"
#: A task value key, as `{{tasks.<task_key>.values.<key>}}` can name it.
KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
MAX_BYTES = 1_000_000

_local: dict[str, dict[str, Any]] = {}


def _task_dir() -> Path | None:
    folder = os.environ.get(TASK_DIR_ENV)
    return Path(folder) if folder else None


def _task() -> dict[str, Any]:
    folder = _task_dir()
    if folder is None:
        return {}
    loaded: dict[str, Any] = json.loads((folder / TASK_FILE).read_text())
    return loaded


def set(key: str, value: Any) -> None:
    """Store `value` (JSON-serialisable, at most 1 MB as JSON) under `key` for downstream tasks."""
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise TaskValueError(
            f"Invalid task value key {key!r}: use letters, digits, '_' and '-' (at most 128), "
            "e.g. 'model_uri'."
        )
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TaskValueError(
            f"Task value '{key}' is not JSON-serialisable ({exc}); store plain data such as "
            "str, int, float, bool, None, lists and dicts with string keys (e.g. a model URI, "
            "not the model)."
        ) from None
    if len(text) > MAX_BYTES:
        raise TaskValueError(
            f"Task value '{key}' is {len(text)} bytes as JSON; the limit is {MAX_BYTES}. "
            "Write large results to a table and pass its name."
        )
    folder = _task_dir()
    if folder is None:
        _local.setdefault("", {})[key] = json.loads(text)
        return
    path = folder / VALUES_FILE
    values = json.loads(path.read_text()) if path.exists() else {}
    values[key] = json.loads(text)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(values))
    partial.replace(path)  # atomic: a task killed mid-write leaves the previous values whole


def get(task_key: str, key: str, default: Any = None) -> Any:
    """The value `key` set by `task_key`, an upstream task of this run; `default` if it set none.

    TaskValueError if `task_key` is not upstream of the running task (its values could not be
    ready yet).
    """
    folder = _task_dir()
    if folder is None:
        return _local.get("", {}).get(key, default)
    task = _task()
    upstream: dict[str, dict[str, Any]] = task.get("upstream_values", {})
    if task_key not in upstream:
        raise TaskValueError(
            f"Task '{task.get('task_key')}' cannot read values of '{task_key}': it is not upstream "
            f"of it (upstream: {', '.join(sorted(upstream)) or 'none'}). Add it to depends_on."
        )
    return upstream[task_key].get(key, default)
