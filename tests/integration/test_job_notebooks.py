"""Notebook tasks end to end, with real task processes and real kernels: parameters resolved and
injected, task values and the workspace inside the notebook, the executed notebook kept on
success and failure, and no kernel left behind by a timeout, a cancel or a killed task process."""

from __future__ import annotations

import json
import os
import re
import signal
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import pyarrow as pa
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from tests.integration.jobs_project import alive, make_project

from lakestack import Workspace
from lakestack.jobs.store import RunInfo


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


def write_notebook(project: Path, name: str, *cells: str | tuple[str, list[str]]) -> None:
    """`notebooks/<name>` with a markdown title and one code cell per item (source, or (source, tags))."""
    nb = new_notebook(
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    )
    nb.cells = [new_markdown_cell(f"# {name}")]
    for cell in cells:
        source, tags = cell if isinstance(cell, tuple) else (cell, [])
        nb.cells.append(new_code_cell(textwrap.dedent(source), metadata={"tags": tags} if tags else {}))
    (project / "notebooks").mkdir(exist_ok=True)
    nbformat.write(nb, project / "notebooks" / name)


def create_job(ws: Workspace, project: Path, text: str) -> None:
    path = project / "job.yml"
    path.write_text(textwrap.dedent(text))
    ws.jobs.create(path)


def states(run: RunInfo) -> dict[str, str]:
    return {t.task_key: t.state for t in run.tasks}


def executed(run: RunInfo, task_key: str) -> nbformat.NotebookNode:
    output = run.task(task_key).output
    assert output is not None, run.task(task_key)
    path = Path(output["notebook"])
    assert path.parent == Path(str(run.task(task_key).log_dir))  # kept in the attempt folder
    return nbformat.read(path, as_version=4)


def text_outputs(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "execute_result":
            parts.append(output.data["text/plain"])
        elif output.output_type == "error":
            parts.append("\n".join(output.traceback))
    return "".join(parts)


def test_a_notebook_gets_resolved_parameters_and_hands_values_on(
    sqlite_workspace: Workspace, project: Path
) -> None:
    ws = sqlite_workspace
    ws.schemas.create("dev.shop")
    ws.tables.create("dev.shop.orders", data=pa.table({"id": [1, 2, 3], "amount": [5.0, 7.5, 2.5]}))
    write_notebook(
        project,
        "score.ipynb",
        ("catalog = 'nowhere'\nfloor = '0'\nnote = 'default'", ["parameters"]),
        """
        import os
        from lakestack.jobs import context, notebook, task_values
        import steps  # the job's folder is importable, as in a python task
        print(catalog, floor, os.path.basename(os.getcwd()))
        """,
        """
        table = context.workspace().tables.read(f"{catalog}.shop.orders")
        total = sum(a for a in table.column("amount").to_pylist() if a > float(floor))
        task_values.set("total", total)
        total
        """,
        "print(repr(note), notebook.parameter('floor'), notebook.parameter('missing', 'fallback'))",
        "notebook.exit({'total': total, 'rows': table.num_rows})",
        "raise RuntimeError('cells after exit() do not run')",
    )
    create_job(
        ws,
        project,
        """
        name: scoring
        parameters: [{name: catalog, default: dev}]
        tasks:
          - task_key: prepare
            python_task: {function: "steps:put", parameters: {key: floor, value: "3"}}
          - task_key: score
            depends_on: [{task_key: prepare}]
            notebook_task:
              notebook_path: notebooks/score.ipynb
              base_parameters:
                catalog: "{{job.parameters.catalog}}"
                floor: "{{tasks.prepare.values.floor}}"
                note: "it's \\"quoted\\"\\n'); import os; os._exit(3) #"
          - task_key: big_enough
            depends_on: [{task_key: score}]
            condition_task: {op: GREATER_THAN, left: "{{tasks.score.values.total}}", right: "10"}
          - task_key: publish
            depends_on: [{task_key: big_enough, outcome: "true"}]
            python_task: {function: "steps:noop"}
        """,
    )
    run = ws.jobs.run_now("scoring")
    assert run.state == "SUCCESS", (run.error, [(t.task_key, t.error) for t in run.tasks])
    assert states(run) == {
        "prepare": "SUCCESS",
        "score": "SUCCESS",
        "big_enough": "SUCCESS",
        "publish": "SUCCESS",
    }
    score = run.task("score")
    assert score.task_values == {"total": 12.5}
    assert run.task("big_enough").output["left"] == "12.5"
    assert score.output == {
        "notebook": str(Path(str(score.log_dir)) / "notebook.ipynb"),
        "cells_executed": 5,  # the parameters cell and four more; not the injected one
        "exit_value": {"total": 12.5, "rows": 3},
    }
    # The executed notebook: the injected cell right after the `parameters` cell, then outputs.
    nb = executed(run, "score")
    assert [c.metadata.get("tags", []) for c in nb.cells[1:3]] == [["parameters"], ["injected-parameters"]]
    injected = nb.cells[2].source
    assert "catalog = 'dev'\nfloor = '3'\n" in injected
    assert text_outputs(nb.cells[3]) == "dev 3 notebooks\n"  # run from the notebook's folder
    assert text_outputs(nb.cells[4]) == "12.5"
    # A value is data, never code: the quotes and newline come through as they were.
    assert text_outputs(nb.cells[5]) == "'it\\'s \"quoted\"\\n\\'); import os; os._exit(3) #' 3 fallback\n"
    assert text_outputs(nb.cells[6]) == "Notebook exited: {'total': 12.5, 'rows': 3}\n"
    assert nb.cells[7].execution_count is None and nb.cells[7].outputs == []
    # The kernel acted as the run's principal, and lineage saw the notebook read the table.
    read = ws.lineage.downstream("dev.shop.orders", version=0)
    assert f"scoring#{run.run_id}/score" in [n.ref.name for n in read.find("job_run")]


def test_a_failing_cell_fails_the_task_and_the_notebook_keeps_the_traceback(
    sqlite_workspace: Workspace, project: Path
) -> None:
    ws = sqlite_workspace
    write_notebook(
        project,
        "fail.ipynb",
        "x = 1",
        "\n# a comment first\ny = x / 0\n",
        "print('never')",
    )
    create_job(
        ws,
        project,
        """
        name: failing
        tasks:
          - task_key: nb
            notebook_task: {notebook_path: notebooks/fail.ipynb, base_parameters: {x: "2"}}
          - task_key: after
            depends_on: [{task_key: nb}]
            python_task: {function: "steps:noop"}
        """,
    )
    run = ws.jobs.run_now("failing")
    assert states(run) == {"nb": "FAILED", "after": "UPSTREAM_FAILED"}
    error = (
        "NotebookFailed: cell 3 of notebooks/fail.ipynb (`# a comment first`) raised "
        "ZeroDivisionError: division by zero"
    )
    assert run.task("nb").error == error
    assert run.error == f"task 'nb' FAILED: {error}"
    assert run.task("nb").output["cells_executed"] == 2
    nb = executed(run, "nb")
    assert nb.cells[0].metadata["tags"] == ["injected-parameters"]  # no `parameters` cell: first
    failed = nb.cells[3]
    assert failed.outputs[-1].output_type == "error" and failed.outputs[-1].ename == "ZeroDivisionError"
    assert "y = x / 0" in re.sub(r"\x1b\[[0-9;]*m", "", text_outputs(failed))  # the line, uncoloured
    assert nb.cells[4].execution_count is None


PIDS = """
import json, os, subprocess
child = subprocess.Popen(["sleep", "60"])
pids = {"kernel": os.getpid(), "task": os.getppid(), "child": child.pid}
with open(PID_FILE + ".tmp", "w") as f:
    json.dump(pids, f)
os.replace(PID_FILE + ".tmp", PID_FILE)
print("started")
"""


def wait_for_pids(path: Path, timeout: float = 20) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared: the kernel did not start"
        time.sleep(0.02)
    pids: dict[str, int] = json.loads(path.read_text())
    return pids


def assert_gone(*pids: int, timeout: float = 3) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize("stop", ["timeout", "cancel"])
def test_a_timed_out_or_canceled_notebook_leaves_no_kernel_behind(
    sqlite_workspace: Workspace, project: Path, tmp_path: Path, stop: str
) -> None:
    ws = sqlite_workspace
    pid_file = tmp_path / "pids.json"
    write_notebook(
        project, "slow.ipynb", ("PID_FILE = ''", ["parameters"]), PIDS, "import time; time.sleep(60)"
    )
    create_job(
        ws,
        project,
        f"""
        name: slow
        tasks:
          - task_key: nb
            timeout_seconds: {5 if stop == "timeout" else 0}
            notebook_task:
              {{notebook_path: notebooks/slow.ipynb, base_parameters: {{PID_FILE: "{pid_file}"}}}}
        """,
    )
    started = time.monotonic()
    if stop == "timeout":
        run = ws.jobs.run_now("slow")
        assert states(run) == {"nb": "TIMEDOUT"} and run.task("nb").error == "timed out after 5 s"
    else:
        run_id = ws.jobs.run_now("slow", wait=False).run_id
        wait_for_pids(pid_file)
        ws.jobs.cancel(run_id)
        deadline = time.monotonic() + 5
        while (run := ws.jobs.get_run(run_id)).state == "RUNNING":
            assert time.monotonic() < deadline, run
            time.sleep(0.05)
        assert states(run) == {"nb": "CANCELED"}
    assert time.monotonic() - started < 12
    pids = wait_for_pids(pid_file, 0)
    assert pids["kernel"] != pids["task"]
    assert_gone(pids["kernel"], pids["child"], pids["task"])
    # The notebook as far as it got is kept: the cell that hung is the last one run.
    nb = nbformat.read(Path(str(run.task("nb").log_dir)) / "notebook.ipynb", as_version=4)
    assert text_outputs(nb.cells[3]) == "started\n" and nb.cells[4].execution_count is not None


def test_a_killed_task_process_takes_its_kernel_with_it(
    sqlite_workspace: Workspace, project: Path, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    pid_file = tmp_path / "pids.json"
    write_notebook(project, "slow.ipynb", PIDS, "import time; time.sleep(60)")
    create_job(
        ws,
        project,
        f"""
        name: killed
        tasks:
          - task_key: nb
            notebook_task:
              {{notebook_path: notebooks/slow.ipynb, base_parameters: {{PID_FILE: "{pid_file}"}}}}
        """,
    )
    # SIGKILL: the task process cannot clean up; the kernel must notice on its own.
    killer = threading.Thread(target=lambda: os.kill(wait_for_pids(pid_file)["task"], signal.SIGKILL))
    killer.start()
    run = ws.jobs.run_now("killed")
    killer.join()
    assert states(run) == {"nb": "FAILED"}
    assert run.task("nb").error == "the task process was killed by SIGKILL"
    pids = wait_for_pids(pid_file, 0)
    assert_gone(pids["kernel"], pids["child"])
