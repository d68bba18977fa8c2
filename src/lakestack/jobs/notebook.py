"""Notebook tasks: run a .ipynb with its parameters and keep the executed notebook.

```yaml
tasks:
  - task_key: train
    notebook_task:
      notebook_path: notebooks/train.ipynb          # relative to the job's folder
      base_parameters:
        catalog: "{{job.parameters.catalog}}"
        model_uri: "{{tasks.register.values.model_uri}}"
```

The runner resolves the `{{...}}` references before each attempt; the task process (`run`)
injects the parameters as a code cell tagged `injected-parameters` right after the cell tagged
`parameters` (the papermill convention: it overrides that cell's defaults), or first when no
cell has that tag. Values are strings, as Databricks widgets give them, written as Python
string literals, so a value can never run as code.

The notebook runs on a Python kernel of the task's own interpreter, with the task's
environment: `task_values.set/get` and `context.workspace()` work in its cells, the job's folder
is importable and the working directory is the notebook's folder. Inside a cell:

```python
from lakestack.jobs import notebook
threshold = float(notebook.parameter("threshold", "0.8"))  # a base parameter, or the default
notebook.exit({"auc": auc})                               # stop here; the task succeeds with it
```

The executed notebook, outputs and tracebacks included, is written to `<attempt>/notebook.ipynb`
whether the task succeeds or fails (and, as far as it got, when it is stopped). The task's
output records its path, the number of cells executed and the value passed to `exit`. A failing
cell fails the task with an error naming the cell and the exception.

The kernel: jupyter_client starts it in a session of its own, out of the task's process group,
so the executor's kill would miss it. The task process kills the kernel's group when it is
terminated, and the kernel (started through this module) kills its own group as soon as the task
process is gone (SIGKILL included), taking whatever its cells started with it.
"""

from __future__ import annotations

import ast
import contextlib
import json
import keyword
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from lakestack.errors import JobError
from lakestack.jobs.task_values import TASK_DIR_ENV, TASK_FILE

if TYPE_CHECKING:
    from nbformat import NotebookNode

PARAMETERS_TAG = "parameters"
INJECTED_TAG = "injected-parameters"
#: The executed notebook, in the attempt folder.
EXECUTED_FILE = "notebook.ipynb"
#: Where `exit` leaves its value for the task process.
EXIT_FILE = "notebook_exit.json"
MAX_EXIT_BYTES = 1_000_000
#: How often the kernel checks that the task process is still there.
PARENT_POLL_SECONDS = 0.2
_EXIT_NAME = "NotebookExit"
#: The kernel's sockets and connection file (with its signing key) live in a temporary folder.
RUNTIME_PREFIX = "lakestack-kernel-"


class NotebookFailed(JobError):
    """A notebook task's cell raised an error (the executed notebook holds the traceback)."""


class NotebookExit(BaseException):
    """Raised by `exit` to stop the notebook. A BaseException, so `except Exception` in a cell
    does not swallow it."""


# --- inside the notebook -----------------------------------------------------------------------


def parameter(name: str, default: str | None = None) -> str | None:
    """The notebook task's base parameter `name` (after references are resolved), or `default`
    when the task does not set it or the notebook runs outside a job (like `dbutils.widgets.get`
    with a default)."""
    folder = os.environ.get(TASK_DIR_ENV)
    if not folder:
        return default
    task = json.loads((Path(folder) / TASK_FILE).read_text())
    if task.get("kind") != "notebook":
        return default
    value = task["settings"]["parameters"].get(name)
    return default if value is None else str(value)


def exit(value: Any = None) -> NoReturn:
    """Stop the notebook here; the task succeeds and its output keeps `value` (JSON, at most
    1 MB), like `dbutils.notebook.exit`. The cells after this one do not run."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise JobError(
            f"notebook.exit() takes a JSON value ({exc}): pass plain data such as a str, a number "
            "or a dict of them."
        ) from None
    if len(text) > MAX_EXIT_BYTES:
        raise JobError(
            f"notebook.exit() value is {len(text)} bytes as JSON; the limit is {MAX_EXIT_BYTES}. "
            "Write large results to a table and pass its name."
        )
    folder = os.environ.get(TASK_DIR_ENV)
    if folder:
        (Path(folder) / EXIT_FILE).write_text(text)
    shell = _ipython()
    if shell is not None and NotebookExit not in tuple(shell.custom_exceptions):
        # Show one line, not a traceback, for the cell that exited.
        shell.set_custom_exc((NotebookExit,), _show_exit)
    raise NotebookExit(value)


def _ipython() -> Any:
    module = sys.modules.get("IPython")
    return module.get_ipython() if module is not None else None


def _show_exit(shell: Any, etype: type, evalue: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    shown = repr(evalue.args[0]) if evalue.args else "None"
    # IPython does not display what a custom handler returns: print it as the cell's output.
    print(f"Notebook exited: {shown[:200]}")
    return []


# --- parameters --------------------------------------------------------------------------------


def parameters_source(parameters: dict[str, str]) -> str:
    """The code of the injected cell: one `name = 'value'` line per parameter, values as string
    literals (never code). JobError for a name that is not a Python identifier."""
    lines = ["# Parameters (injected by the job run)"]
    for name, value in parameters.items():
        if not name.isidentifier() or keyword.iskeyword(name):
            raise JobError(
                f"Notebook base parameter {name!r} is not a Python name, so the notebook cannot get "
                "it as a variable: use letters, digits and '_', e.g. 'run_date'."
            )
        literal = repr(str(value))
        # repr() of a str is a literal by construction; checked, because this is the only
        # place a parameter value meets the notebook's code.
        assert ast.literal_eval(literal) == str(value)
        lines.append(f"{name} = {literal}")
    return "\n".join(lines) + "\n"


def inject_parameters(nb: NotebookNode, parameters: dict[str, str]) -> int | None:
    """Insert the parameters cell (tagged `injected-parameters`) after the first cell tagged
    `parameters`, or first; an injected cell left by an earlier run is replaced. Returns the
    new cell's index, None when there are no parameters."""
    import nbformat

    nb.cells = [cell for cell in nb.cells if INJECTED_TAG not in _tags(cell)]
    if not parameters:
        return None
    cell = nbformat.v4.new_code_cell(parameters_source(parameters), metadata={"tags": [INJECTED_TAG]})
    if nb.get("nbformat_minor", 5) < 5:
        del cell["id"]  # cell ids came with nbformat 4.5; an older notebook would not validate
    tagged = [index for index, cell in enumerate(nb.cells) if PARAMETERS_TAG in _tags(cell)]
    index = tagged[0] + 1 if tagged else 0
    nb.cells.insert(index, cell)
    return index


def _tags(cell: Any) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


# --- the task process --------------------------------------------------------------------------


def run(directory: Path, task: dict[str, Any]) -> dict[str, Any]:
    """Execute the task's notebook (its settings resolved by the runner); returns the task's
    output. The executed notebook is written to `directory` even when a cell fails."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    settings = task["settings"]
    relative = settings["notebook_path"]
    folder = Path(task.get("job_folder") or ".")
    source = folder / relative
    nb = _read(source, task["task_key"])
    injected = inject_parameters(nb, settings["parameters"])
    executed = directory / EXECUTED_FILE
    runtime = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX))  # private (0700), short for sockets
    manager = _kernel_manager(runtime)
    state: dict[str, int | None] = {"cell": None}

    def on_cell_start(cell: Any, cell_index: int) -> None:
        state["cell"] = cell_index

    client = NotebookClient(
        nb,
        km=manager,
        timeout=None,  # the task's timeout governs
        startup_timeout=60,
        resources={"metadata": {"path": str(source.parent.resolve())}},
        on_cell_start=on_cell_start,
        on_notebook_start=lambda notebook: _stop_on_sigterm(manager, nb, executed, runtime),
    )
    env = _kernel_env(task)
    failed: CellExecutionError | None = None
    died = False
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        failed = exc
    except DeadKernelError:
        died = True
    finally:
        _shutdown(client, manager)
        shutil.rmtree(runtime, ignore_errors=True)
        nbformat.write(nb, executed)
    index = state["cell"]
    output: dict[str, Any] = {
        "notebook": str(executed),
        "cells_executed": _executed_cells(nb, index, injected),
    }
    if failed is not None and failed.ename == _EXIT_NAME:
        exit_file = directory / EXIT_FILE
        output["exit_value"] = json.loads(exit_file.read_text()) if exit_file.exists() else None
    elif failed is not None or died:
        from lakestack.jobs.entrypoint import OUTPUT_FILE

        (directory / OUTPUT_FILE).write_text(json.dumps(output))
        raise NotebookFailed(_cell_error(nb, index, injected, relative, failed)) from None
    return output


def _read(source: Path, task_key: str) -> NotebookNode:
    import nbformat

    if not source.is_file():
        raise JobError(f"Notebook '{source}' of task '{task_key}' does not exist.")
    try:
        nb = nbformat.read(source, as_version=4)
    except (ValueError, nbformat.reader.NotJSONError) as exc:
        raise JobError(
            f"Notebook '{source}' of task '{task_key}' is not a valid .ipynb file: {exc}"
        ) from None
    language = nb.metadata.get("kernelspec", {}).get("language") or "python"
    if language.lower() != "python":
        raise JobError(
            f"Notebook '{source}' of task '{task_key}' is a {language} notebook; notebook tasks run "
            "Python notebooks."
        )
    return nb


def _kernel_manager(runtime: Path) -> Any:
    """A kernel manager for a Python kernel of this interpreter, started through this module (so
    it dies with the task process), over Unix sockets in `runtime` (no TCP port to reach it)."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    spec = KernelSpec(
        argv=[sys.executable, "-m", __name__, "-f", "{connection_file}"],
        display_name="Python (lakestack task)",
        language="python",
    )

    class TaskKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self) -> KernelSpec:
            return spec

    return TaskKernelManager(
        transport="ipc", ip=str(runtime / "kernel"), connection_file=str(runtime / "connection.json")
    )


def _kernel_env(task: dict[str, Any]) -> dict[str, str]:
    """The task's environment, with the job's folder importable (as in a python task)."""
    env = dict(os.environ)
    folder = task.get("job_folder")
    if folder:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH")) if p)
    return env


def _kernel_pid(manager: Any) -> int | None:
    provisioner = getattr(manager, "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    return pid if isinstance(pid, int) else None


def _kill_kernel(manager: Any) -> None:
    pid = _kernel_pid(manager)
    if pid is not None:
        # The kernel leads its own session and process group; its cells' children are in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def _stop_on_sigterm(manager: Any, nb: NotebookNode, executed: Path, runtime: Path) -> None:
    """On SIGTERM (timeout, cancel), kill the kernel and keep the notebook as far as it got,
    then die of the signal. Replaces nbclient's handler, which shuts the kernel down gracefully
    (seconds) while the executor waits."""
    import asyncio

    import nbformat

    def on_term() -> None:
        _kill_kernel(manager)
        shutil.rmtree(runtime, ignore_errors=True)
        with contextlib.suppress(Exception):
            nbformat.write(nb, executed)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    with contextlib.suppress(RuntimeError, NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_term)


def _shutdown(client: Any, manager: Any) -> None:
    """Shut the kernel down (nbclient does not, for a manager it was given); kill what is left."""
    with contextlib.suppress(Exception):
        if client.kc is not None:
            client.kc.stop_channels()
    with contextlib.suppress(Exception):
        if manager.has_kernel:
            from jupyter_client.utils import run_sync

            run_sync(manager.shutdown_kernel)(now=True)
    _kill_kernel(manager)


def _executed_cells(nb: NotebookNode, last: int | None, injected: int | None) -> int:
    """Code cells run, up to and including `last` (the injected parameters cell not counted; the
    last one counts even if the kernel died before answering)."""
    if last is None:
        return 0
    return sum(
        1
        for index, cell in enumerate(nb.cells[: last + 1])
        if cell.cell_type == "code"
        and index != injected
        and (cell.get("execution_count") is not None or index == last)
    )


def _cell_error(nb: NotebookNode, index: int | None, injected: int | None, path: str, exc: Any | None) -> str:
    """`cell 3 of notebooks/x.ipynb (`y = 1 / 0`) raised ZeroDivisionError: division by zero`,
    numbering cells as in the source notebook (1-based, the injected cell not counted); with no
    `exc`, the kernel died running the cell."""
    if exc is None:
        raised = "killed the kernel (it exited or ran out of memory)"
    else:
        evalue = (str(exc.evalue).strip().splitlines() or [""])[0]
        raised = f"raised {exc.ename}: {evalue}" if evalue else f"raised {exc.ename}"
    if index is None:
        return f"{path} {raised}"
    number = index + 1 - (1 if injected is not None and injected < index else 0)
    lines = [line.strip() for line in str(nb.cells[index].source).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if len(first) > 60:
        first = first[:57] + "..."
    return f"cell {number} of {path} (`{first}`) {raised}"


# --- the kernel process ------------------------------------------------------------------------


def _die_with_parent(runtime: Path | None) -> None:
    """Kill this kernel's process group once the task process that started it is gone, removing
    the runtime folder the task process can no longer remove."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                if runtime is not None:
                    shutil.rmtree(runtime, ignore_errors=True)
                os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="lakestack-kernel-parent-watch", daemon=True).start()


def _kernel_main(argv: list[str]) -> None:
    """The kernel process: `python -m lakestack.jobs.notebook -f <connection file>`."""
    connection = Path(argv[argv.index("-f") + 1]) if "-f" in argv[:-1] else None
    runtime = connection.parent if connection and connection.parent.name.startswith(RUNTIME_PREFIX) else None
    _die_with_parent(runtime)
    from ipykernel import kernelapp

    kernelapp.launch_new_instance(argv=argv)


if __name__ == "__main__":
    _kernel_main(sys.argv[1:])
