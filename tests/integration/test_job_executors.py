"""The executor conformance suite: every executor (local, Ray) passes these tests.

Each test writes an attempt folder by hand (task.json, as the runner would) and runs it with
real processes: success with values and output, a failing task, a timeout that must kill the
task's children, a cancel, a kill from outside, and the runner's environment reaching the task.
Ray runs on a real local cluster (the `ray_address` fixture), its workers warmed up once so
that the timing bounds measure the executor, not Ray starting worker processes. At the end,
what only Ray has: a worker that dies, a cluster that is not there, a folder not on the node.
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
from tests.integration.jobs_project import alive, make_project, wait_for_pid

from lakestack.jobs.executors import Attempt, Executor
from lakestack.jobs.executors.local import LocalExecutor

RAY = pytest.mark.xdist_group("ray")  # meant to keep them on one worker (see ray_cluster.py)
EXECUTORS = ["local", pytest.param("ray", marks=RAY)]
#: Reports where the task process runs and what it sees, as task values.
WHERE = """
import os
from pathlib import Path

import lakestack
from lakestack.jobs import task_values


def report(names):
    parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\\0")[0].decode()
    task_values.set("env", {name: os.environ.get(name) for name in names})
    task_values.set("lakestack", lakestack.__file__)
    task_values.set("parent", parent)
"""


@pytest.fixture(scope="module")
def warm_ray(ray_address: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The cluster's address, once two no-op attempts ran on it at once (a worker per CPU).

    Module-scoped: the connection it holds must not outlive this module's tests, or tests of
    other modules in the same worker process would find the process connected to Ray.

    Its executor stays open until the end: Ray workers belong to a connection, and the
    connection closes when the process's last Ray executor does.
    """
    from lakestack.jobs.executors.ray import RayExecutor

    tmp = tmp_path_factory.mktemp("warm-ray")
    project = make_project(tmp / "project")
    warm = RayExecutor(ray_address)
    runs = [attempt(tmp / str(i), project, "steps:noop", {}) for i in range(2)]
    threads = [threading.Thread(target=warm.run, args=(run, never)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    yield ray_address
    warm.close()


@pytest.fixture(params=EXECUTORS)
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    made: Executor
    if request.param == "ray":
        from lakestack.jobs.executors.ray import RayExecutor

        made = RayExecutor(request.getfixturevalue("warm_ray"), grace_seconds=2.0)
    else:
        made = LocalExecutor(grace_seconds=2.0)
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
    grandchild = wait_for_pid(pid_file, 0)
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
        os.kill(wait_for_pid(pid_file), signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    result = executor.run(run, never)
    killer.join()
    assert result.state == "FAILED" and result.exit_code == -signal.SIGKILL
    assert result.error == "the task process was killed by SIGKILL"


def test_the_runners_environment_and_lakestack_reach_the_task(
    executor: Executor, tmp_path: Path, project: Path
) -> None:
    import lakestack

    (project / "where.py").write_text(WHERE)
    run = attempt(tmp_path, project, "where:report", {"names": ["LAKESTACK_TEST_MARK"]})
    run = Attempt(run.run_id, run.task_key, run.number, run.directory, run.cwd, {"LAKESTACK_TEST_MARK": "x"})
    assert executor.run(run, never).state == "SUCCESS"
    values = json.loads((run.directory / "values.json").read_text())
    assert values["env"] == {"LAKESTACK_TEST_MARK": "x"}
    assert values["lakestack"] == lakestack.__file__  # the same source as the runner's, not another
    if executor.name == "ray":
        assert values["parent"].startswith("ray::"), values["parent"]  # it ran under a Ray worker


# --- what only Ray has -------------------------------------------------------------------


@RAY
def test_a_ray_worker_that_dies_fails_the_attempt_and_takes_the_task_along(
    warm_ray: str, tmp_path: Path, project: Path
) -> None:
    from lakestack.jobs.executors.ray import RayExecutor

    executor = RayExecutor(warm_ray, grace_seconds=2.0)
    pid_file = tmp_path / "task.pid"
    run = attempt(tmp_path, project, "steps:pid_then_sleep", {"pid_file": str(pid_file), "attempt": 1})
    task: list[int] = []

    def kill_the_worker() -> None:
        task.append(wait_for_pid(pid_file))
        worker = int(Path(f"/proc/{task[0]}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert Path(f"/proc/{worker}/cmdline").read_bytes().startswith(b"ray::")
        os.kill(worker, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    started = time.monotonic()
    result = executor.run(run, never)
    killer.join()
    executor.close()
    assert time.monotonic() - started < 20
    assert result.state == "FAILED" and result.exit_code is None
    assert result.error is not None
    assert result.error.startswith("the Ray worker running the attempt died (WorkerCrashedError")
    deadline = time.monotonic() + 3  # the task watches its parent every 0.5 s
    while alive(task[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(task[0]), "the task process outlived its Ray worker"


@RAY
def test_an_unreachable_cluster_fails_the_attempt_naming_the_address_and_the_fix(
    warm_ray: str, tmp_path: Path, project: Path
) -> None:
    from tests.integration.ray_cluster import free_port

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    # In a fresh process: this one is connected to the test cluster (see the next test).
    code = f"""
import json, sys, time
from lakestack.jobs.executors import Attempt
from lakestack.jobs.executors.ray import RayExecutor

executor = RayExecutor({address!r})
started = time.monotonic()
result = executor.run(Attempt(1, "t", 1, {str(tmp_path)!r}, {str(project)!r}), lambda: False)
print(json.dumps([result.state, result.error, time.monotonic() - started]))
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    state, error, seconds = json.loads(done.stdout.strip().splitlines()[-1])
    assert state == "FAILED" and seconds < 5
    assert error.startswith(f"Cannot reach the Ray cluster at '{address}' (")
    assert "ray start --head" in error and "[jobs] ray_address" in error


@RAY
def test_a_second_cluster_in_one_process_fails_the_attempt_saying_why(
    warm_ray: str, tmp_path: Path, project: Path
) -> None:
    from lakestack.jobs.executors.ray import RayExecutor

    executor = RayExecutor("127.0.0.1:1")  # while `warm_ray` holds this process's connection
    result = executor.run(attempt(tmp_path, project, "steps:noop", {}), never)
    executor.close()
    assert result.state == "FAILED" and result.error == (
        f"This process is connected to the Ray cluster at '{warm_ray}' for another run and Ray "
        "allows one cluster per process, so it cannot use '127.0.0.1:1': give every workspace "
        "served by one process the same ray_address."
    )
    # The connection to the real cluster survived.
    working = RayExecutor(warm_ray)
    assert working.run(attempt(tmp_path / "again", project, "steps:noop", {}), never).state == "SUCCESS"
    working.close()


@RAY
def test_an_attempt_folder_the_ray_node_does_not_see_fails_saying_so(
    warm_ray: str, tmp_path: Path, project: Path
) -> None:
    from lakestack.jobs.executors.ray import RayExecutor

    executor = RayExecutor(warm_ray)
    missing = tmp_path / "not-shared" / "attempt-1"
    result = executor.run(Attempt(1, "t", 1, missing, project, {}), never)
    executor.close()
    assert result.state == "FAILED" and result.error is not None
    assert result.error.startswith(f"the attempt folder '{missing}' does not exist on Ray node ")
    assert "storage every node of the cluster mounts at the same path" in result.error


@RAY
def test_the_ray_connection_closes_with_the_last_executor(warm_ray: str) -> None:
    # In a fresh process: this one holds its connection for the whole session.
    code = f"""
import ray
from lakestack.jobs.executors.ray import RayExecutor

first, second = RayExecutor({warm_ray!r}), RayExecutor({warm_ray!r})
first._connected()
second._connected()
first.close()
assert ray.is_initialized(), "closed while another executor uses it"
second.close()
assert not ray.is_initialized(), "a process connected to a cluster dies with it: disconnect when idle"
"""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
