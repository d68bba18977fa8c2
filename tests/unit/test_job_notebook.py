"""Notebook tasks without a kernel: where the parameters cell goes, that values stay data, the
error that names the failing cell, and the helpers a notebook calls (`parameter`, `exit`)."""

from __future__ import annotations

import ast
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from lakestack.errors import JobError
from lakestack.jobs import notebook
from lakestack.jobs.task_values import TASK_DIR_ENV, TASK_FILE

NASTY = [
    "plain",
    "",
    "it's",
    'say "hi"',
    "back\\slash\\",
    "line\nbreak\r\n",
    "'); import os; os.system('boom') #",
    '"""; raise SystemExit("""',
    "\\'; x = 1 #",
    "\x00\x1b[31m é 字 \U0001f600",
    "{{job.parameters.x}}",
]


def run_source(source: str) -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(source, "<injected>", "exec"), {"__builtins__": {}}, namespace)
    return namespace


@pytest.mark.parametrize("value", NASTY)
def test_a_parameter_value_is_a_string_literal_never_code(value: str) -> None:
    source = notebook.parameters_source({"p": value})
    tree = ast.parse(source)
    assert len(tree.body) == 1  # one assignment, nothing else, whatever the value holds
    assign = tree.body[0]
    assert isinstance(assign, ast.Assign) and isinstance(assign.value, ast.Constant)
    assert run_source(source) == {"p": value}


def test_parameters_become_one_assignment_each_in_order() -> None:
    source = notebook.parameters_source({"catalog": "dev", "threshold": "0.8", "_x1": "y"})
    assert source == "# Parameters (injected by the job run)\ncatalog = 'dev'\nthreshold = '0.8'\n_x1 = 'y'\n"


@pytest.mark.parametrize("name", ["run-date", "1st", "class", "a b", "", "x;y", "a.b"])
def test_a_parameter_name_that_is_not_a_python_name_is_refused(name: str) -> None:
    with pytest.raises(JobError, match=f"Notebook base parameter {name!r} is not a Python name") as error:
        notebook.parameters_source({name: "v"})
    assert "e.g. 'run_date'" in error.value.message


def nb_with(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = list(cells)
    return nb


def tags(nb: nbformat.NotebookNode) -> list[list[str]]:
    return [cell.metadata.get("tags", []) for cell in nb.cells]


def test_the_injected_cell_goes_right_after_the_first_parameters_cell() -> None:
    nb = nb_with(
        new_markdown_cell("# title"),
        new_code_cell("import os"),
        new_code_cell("catalog = 'x'", metadata={"tags": ["setup", "parameters"]}),
        new_code_cell("print(catalog)"),
        new_code_cell("other = 1", metadata={"tags": ["parameters"]}),
    )
    assert notebook.inject_parameters(nb, {"catalog": "dev"}) == 3
    assert tags(nb) == [[], [], ["setup", "parameters"], ["injected-parameters"], [], ["parameters"]]
    assert nb.cells[3].cell_type == "code" and nb.cells[3].source.endswith("catalog = 'dev'\n")
    assert nb.cells[2].source == "catalog = 'x'"  # the defaults stay; the injected cell overrides


def test_without_a_parameters_cell_the_injected_cell_goes_first() -> None:
    nb = nb_with(new_markdown_cell("# title"), new_code_cell("print(1)"))
    assert notebook.inject_parameters(nb, {"a": "1"}) == 0
    assert tags(nb) == [["injected-parameters"], [], []]


def test_an_injected_cell_from_an_earlier_run_is_replaced_and_none_is_added_without_parameters() -> None:
    nb = nb_with(new_code_cell("a = '0'", metadata={"tags": ["parameters"]}), new_code_cell("print(a)"))
    notebook.inject_parameters(nb, {"a": "1"})
    assert notebook.inject_parameters(nb, {"a": "2"}) == 1
    assert [cell.source.splitlines()[-1] for cell in nb.cells] == ["a = '0'", "a = '2'", "print(a)"]
    assert notebook.inject_parameters(nb, {}) is None
    assert tags(nb) == [["parameters"], []]


def test_an_old_format_notebook_stays_valid_with_the_injected_cell(tmp_path: Path) -> None:
    old = new_notebook(nbformat_minor=4)
    old.cells = [new_code_cell("x = 1")]
    for cell in old.cells:
        del cell["id"]  # nbformat 4.4 cells have no ids
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(old))
    nb = nbformat.read(path, as_version=4)
    notebook.inject_parameters(nb, {"x": "2"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nbformat.write(nb, tmp_path / "executed.ipynb")
    nbformat.validate(nbformat.read(tmp_path / "executed.ipynb", as_version=4))


def test_the_error_names_the_cell_as_numbered_in_the_source_notebook() -> None:
    nb = nb_with(
        new_code_cell("x = '1'", metadata={"tags": ["injected-parameters"]}),
        new_markdown_cell("# title"),
        new_code_cell("\n\n   y = 1 / 0  \nz = 2"),
        new_code_cell("w = " + "a" * 80),
    )
    error = SimpleNamespace(ename="ZeroDivisionError", evalue="division by zero\nmore")
    assert (
        notebook._cell_error(nb, 2, 0, "nb.ipynb", error)
        == "cell 2 of nb.ipynb (`y = 1 / 0`) raised ZeroDivisionError: division by zero"
    )
    long = notebook._cell_error(
        nb, 3, None, "nb.ipynb", SimpleNamespace(ename="KeyboardInterrupt", evalue="")
    )
    assert long == f"cell 4 of nb.ipynb (`w = {'a' * 53}...`) raised KeyboardInterrupt"
    assert notebook._cell_error(nb, 2, 0, "nb.ipynb", None).endswith(
        "killed the kernel (it exited or ran out of memory)"
    )
    assert notebook._executed_cells(nb, 2, 0) == 1 and notebook._executed_cells(nb, None, 0) == 0


def in_task(monkeypatch: pytest.MonkeyPatch, folder: Path, kind: str, parameters: dict[str, str]) -> None:
    task = {"kind": kind, "task_key": "t", "settings": {"parameters": parameters}}
    (folder / TASK_FILE).write_text(json.dumps(task))
    monkeypatch.setenv(TASK_DIR_ENV, str(folder))


def test_parameter_reads_the_task_parameters_or_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TASK_DIR_ENV, raising=False)
    assert notebook.parameter("catalog", "dev") == "dev"  # outside a job
    in_task(monkeypatch, tmp_path, "notebook", {"catalog": "prod"})
    assert notebook.parameter("catalog", "dev") == "prod"
    assert notebook.parameter("missing") is None and notebook.parameter("missing", "d") == "d"
    in_task(monkeypatch, tmp_path, "python", {"catalog": "prod"})
    assert notebook.parameter("catalog", "dev") == "dev"  # a python task's parameters are not widgets


def test_exit_stops_with_a_json_value_left_for_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_task(monkeypatch, tmp_path, "notebook", {})
    with pytest.raises(notebook.NotebookExit) as stopped:
        notebook.exit({"auc": 0.9, "uri": "models:/m/1"})
    assert not isinstance(stopped.value, Exception)  # `except Exception` in a cell does not catch it
    assert json.loads((tmp_path / notebook.EXIT_FILE).read_text()) == {"auc": 0.9, "uri": "models:/m/1"}
    with pytest.raises(JobError, match=r"notebook.exit\(\) takes a JSON value"):
        notebook.exit(object())
    with pytest.raises(JobError, match="the limit is 1000000"):
        notebook.exit("x" * 1_000_001)
