"""The executor conformance suite: every executor (local today, Ray next) passes these tests.

Each test writes an attempt folder by hand (task.json, as the runner would) and runs it with
real processes: success with values and output, a failing task, a timeout that must kill the
task's children, a cancel, and a kill from outside.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.jobs_project import alive, make_project

from lakestack.jobs.executors import Attempt, Executor
from lakestack.jobs.executors.local import LocalExecutor

EXECUTORS = ["local"]


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    made: Executor = LocalExecutor(grace_seconds=2.0)
    yield made
    made.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


def attempt(
    tmp_path: Path, project: Path, function: str, parameters: dict[str, Any], timeout: float | None = None
) -> Attempt:
    directory = tmp_path / "runs" / "1" / "t" / "attempt-1"
    directory.mkdir(parents=True)
    task = {
        "kind": "python",
        "task_key": "t",
        "attempt": 1,
        "job_name": "conformance",
        "run_id": 1,
        "workspace": str(tmp_path / "no-workspace"),
        "principal": "admin",
        "job_folder": str(project),
        "settings": {"function": function, "parameters": parameters, "script": None, "args": []},
        "upstream_values": {"left": {"n": 1}},
        "commit": {},
        "properties": {},
    }
    (directory / "task.json").write_text(json.dumps(task))
    return Attempt(1, "t", 1, directory, project, {"PYTHONUNBUFFERED": "1"}, timeout)


def never() -> bool:
    return False


def wait_for(path: Path, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return int(path.read_text())


def test_a_task_that_returns_succeeds_with_its_values_output_and_logs(
    executor: Executor, tmp_path: Path, project: Path
) -> None:
    run = attempt(tmp_path, project, "steps:add_one", {"n": 41})
    result = executor.run(run, never)
    assert (result.state, result.exit_code, result.error) == ("SUCCESS", 0, None)
    assert json.loads((run.directory / "values.json").read_text()) == {"n": 42}
    assert json.loads((run.directory / "output.json").read_text()) == {"result": {"n": 41}}
    assert (run.directory / "stdout.log").exists() and (run.directory / "stderr.log").exists()


def test_a_raising_task_fails_with_its_error_and_traceback(
    executor: Executor, tmp_path: Path, project: Path
) -> None:
    run = attempt(tmp_path, project, "steps:fail", {"message": "no data for 2024-01-01"})
    result = executor.run(run, never)
    assert result.state == "FAILED" and result.exit_code == 1
    assert result.error == "ValueError: no data for 2024-01-01"
    assert "Traceback" in (run.directory / "stderr.log").read_text()


def test_a_value_that_is_not_json_fails_the_task_clearly(
    executor: Executor, tmp_path: Path, project: Path
) -> None:
    result = executor.run(attempt(tmp_path, project, "steps:bad_value", {}), never)
    assert result.state == "FAILED"
    assert result.error is not None and result.error.startswith("TaskValueError: Task value 'model'")
    assert "not JSON-serialisable" in result.error


def test_an_unknown_function_fails_naming_it(executor: Executor, tmp_path: Path, project: Path) -> None:
    result = executor.run(attempt(tmp_path, project, "steps:nope", {}), never)
    assert result.state == "FAILED"
    assert result.error == "JobError: Module 'steps' has no function 'nope' (from 'steps:nope')."


def test_a_timeout_kills_the_task_and_its_children(executor: Executor, tmp_path: Path, project: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    run = attempt(tmp_path, project, "steps:spawn_and_sleep", {"pid_file": str(pid_file)}, timeout=1.0)
    started = time.monotonic()
    result = executor.run(run, never)
    assert result.state == "TIMEDOUT" and result.error == "timed out after 1 s"
    assert time.monotonic() - started < 5
    grandchild = wait_for(pid_file, 0)
    deadline = time.monotonic() + 2
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(grandchild), "the task's child process outlived the attempt"


def test_stop_cancels_a_running_task(executor: Executor, tmp_path: Path, project: Path) -> None:
    stop = threading.Event()
    run = attempt(tmp_path, project, "steps:sleep", {"seconds": 30})
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    result = executor.run(run, stop.is_set)
    assert result.state == "CANCELED" and result.error == "canceled"
    assert time.monotonic() - started < 5


def test_a_task_killed_from_outside_fails_naming_the_signal(
    executor: Executor, tmp_path: Path, project: Path
) -> None:
    pid_file = tmp_path / "task.pid"
    run = attempt(tmp_path, project, "steps:pid_then_sleep", {"pid_file": str(pid_file), "attempt": 1})

    def kill() -> None:
        os.kill(wait_for(pid_file), signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    result = executor.run(run, never)
    killer.join()
    assert result.state == "FAILED" and result.exit_code == -signal.SIGKILL
    assert result.error == "the task process was killed by SIGKILL"
