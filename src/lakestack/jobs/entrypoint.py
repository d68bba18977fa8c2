"""The task process: `python -m lakestack.jobs.entrypoint <attempt folder>`.

Reads `task.json` (written by the runner, references already resolved), runs the task, and
leaves its results in the folder: `output.json` (a SQL result's first rows, a function's JSON
return value), `values.json` (task values, written by `task_values.set`) and, on failure,
`error.txt` (one line; the traceback goes to stderr). Exit code 0 is success.

The task acts as the run's principal. Lineage records the table versions it reads and writes
as inputs and outputs of the node `job_run <job>#<run_id>/<task_key>`; the workspace is opened
on the first table access (or for a SQL task), so a task that touches no table starts fast.

When `LAKESTACK_RUNNER_PID` is set (the local executor sets it), the task kills its own process
group as soon as that process is gone, so a killed runner leaves no task running.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakestack.jobs import context as job_context
from lakestack.jobs.executors.base import ERROR_FILE, RUNNER_PID_ENV
from lakestack.jobs.task_values import TASK_DIR_ENV, TASK_FILE
from lakestack.tables import observe

if TYPE_CHECKING:
    from lakestack.workspace import Workspace

OUTPUT_FILE = "output.json"
PARENT_POLL_SECONDS = 0.5


class TaskContext:
    """The workspace as the run's principal, opened once, with the task's lineage activity."""

    def __init__(self, task: dict[str, Any], stack: ExitStack) -> None:
        self._task = task
        self._stack = stack
        self._ws: Workspace | None = None

    def workspace(self) -> Workspace:
        if self._ws is None:
            # The task process is an entry point, like the CLI: it opens the workspace itself.
            from lakestack.workspace import Workspace

            task = self._task
            ws = Workspace.open(task["workspace"], principal=task["principal"])
            self._stack.callback(ws.close)
            from lakestack.lineage.store import NodeRef

            node = NodeRef("job_run", f"{task['job_name']}#{task['run_id']}/{task['task_key']}")
            self._stack.enter_context(ws.lineage.activity(node, task["properties"], task["commit"]))
            self._ws = ws
        return self._ws

    def first_access(self, access: observe.TableAccess) -> None:
        if self._ws is None:
            self.workspace()
            observe.emit(access)  # again, now that the activity's recorder listens


def run(directory: Path) -> dict[str, Any] | None:
    """Run the task described in `directory/task.json`; returns its output."""
    from lakestack.jobs import tasks

    task = json.loads((directory / TASK_FILE).read_text())
    os.environ[TASK_DIR_ENV] = str(directory)
    folder = task.get("job_folder")
    if folder:
        sys.path.insert(0, folder)
    settings = task["settings"]
    with ExitStack() as stack:
        context = TaskContext(task, stack)
        job_context._opener = context.workspace
        stack.enter_context(observe.listening(context.first_access))
        if task["kind"] == "sql":
            return tasks.sql_output(context.workspace().sql(settings["query"]))
        if task["kind"] == "notebook":
            from lakestack.jobs import notebook

            return notebook.run(directory, task)
        if settings.get("function"):
            return tasks.json_output(tasks.run_function(settings["function"], settings["parameters"]))
        tasks.run_script(Path(folder or ".") / settings["script"], settings["args"])
        return None


def _die_with_parent(parent: int) -> None:
    """Kill this task's process group if the process that started it dies (its runner was
    killed): a task must not run on, unseen, with nobody to record its end."""

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="lakestack-parent-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    directory = Path(argv[0])
    parent = os.environ.get(RUNNER_PID_ENV)
    if parent and parent.isdigit():
        _die_with_parent(int(parent))
    try:
        output = run(directory)
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            return 0
        traceback.print_exc()
        message = getattr(exc, "message", None) or str(exc)
        what = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        if isinstance(exc, SystemExit):
            code = exc.code
            what = (
                f"the task exited with code {code}" if isinstance(code, int) else f"the task exited: {code}"
            )
        (directory / ERROR_FILE).write_text(what.splitlines()[0] if what else "")
        return exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
    if output is not None:
        (directory / OUTPUT_FILE).write_text(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
