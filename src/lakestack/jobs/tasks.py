"""What each task type does once its settings are resolved.

python and sql tasks run in the task's own process (see `entrypoint`), notebook tasks too, on a
kernel the task process starts (see `notebook`); a condition task is evaluated by the runner,
with no process, and a run_job task starts the other job's run from the runner.
"""

from __future__ import annotations

import importlib
import json
import math
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakestack.errors import JobError

#: How many rows of a SQL task's result are kept as its output.
SQL_OUTPUT_ROWS = 20

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "EQUAL_TO": lambda a, b: a == b,
    "NOT_EQUAL": lambda a, b: a != b,
    "GREATER_THAN": lambda a, b: a > b,
    "GREATER_THAN_OR_EQUAL": lambda a, b: a >= b,
    "LESS_THAN": lambda a, b: a < b,
    "LESS_THAN_OR_EQUAL": lambda a, b: a <= b,
}


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def evaluate_condition(op: str, left: str, right: str) -> bool:
    """Compare numerically when both sides parse as numbers ("10" > "9"), else as text."""
    a, b = _number(left), _number(right)
    if a is not None and b is not None:
        return _OPS[op](a, b)
    return _OPS[op](left, right)


def run_function(function: str, parameters: dict[str, Any]) -> Any:
    """Import `package.module:function` and call it with keyword `parameters`."""
    module_name, _, attribute = function.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise JobError(
            f"Cannot import module '{module_name}' of function '{function}': {exc}. The job's "
            "folder and the installed packages are on the import path."
        ) from exc
    target = getattr(module, attribute, None)
    if not callable(target):
        raise JobError(f"Module '{module_name}' has no function '{attribute}' (from '{function}').")
    return target(**parameters)


def run_script(script: Path, args: list[str]) -> None:
    """Run a Python file as `__main__` with `args` as its argv; a non-zero SystemExit is a failure."""
    if not script.exists():
        raise JobError(f"Script '{script}' does not exist.")
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(script.parent))
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise


def sql_output(table: Any) -> dict[str, Any]:
    """The first rows of a query result, as stored with the task run."""
    rows = table.slice(0, SQL_OUTPUT_ROWS).to_pylist()
    return {
        "columns": table.schema.names,
        "rows": json.loads(json.dumps(rows, default=str)),
        "num_rows": table.num_rows,
        "truncated": table.num_rows > SQL_OUTPUT_ROWS,
    }


def json_output(value: Any) -> dict[str, Any] | None:
    """A python task's return value as its output, when it is JSON (else None: not kept)."""
    if value is None:
        return None
    try:
        return {"result": json.loads(json.dumps(value, allow_nan=False))}
    except (TypeError, ValueError):
        return None
