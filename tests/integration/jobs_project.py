"""A tiny job project for the job tests: `steps.py` functions that tasks call, written to a folder."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

STEPS = textwrap.dedent(
    """
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    from lakestack.jobs import context, task_values


    def noop():
        pass


    def put(key, value):
        task_values.set(key, value)


    def add_one(n, key="n"):
        task_values.set(key, int(n) + 1)
        return {"n": n}


    def check_sum(left, right, expected):
        total = task_values.get("left", "n") + task_values.get("right", "n")
        assert left + right == expected == total, (left, right, expected, total)
        task_values.set("total", total)


    def fail(message="boom"):
        raise ValueError(message)


    def flaky(counter, failures):
        path = Path(counter)
        seen = int(path.read_text()) if path.exists() else 0
        path.write_text(str(seen + 1))
        if seen < failures:
            raise RuntimeError(f"failure {seen + 1} of {failures}")
        task_values.set("attempts", seen + 1)


    def needs_file(path):
        if not Path(path).exists():
            raise FileNotFoundError(path)


    def pid_then_sleep(pid_file, attempt, seconds=30):
        if int(attempt) > 1:
            return
        Path(pid_file + ".tmp").write_text(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
        time.sleep(seconds)


    def spawn_and_sleep(pid_file, seconds=30):
        child = subprocess.Popen(["sleep", str(seconds)])
        Path(pid_file + ".tmp").write_text(str(child.pid))
        os.replace(pid_file + ".tmp", pid_file)
        time.sleep(seconds)


    def sleep(seconds):
        time.sleep(float(seconds))


    def bad_value():
        task_values.set("model", object())


    def write_table(table):
        import pyarrow as pa

        context.workspace().tables.write(table, pa.table({"id": [1, 2, 3]}), mode="overwrite")


    def seen_env(names):
        task_values.set("seen", {name: name in os.environ for name in names})


    def whoami():
        task_values.set("principal", context.workspace().caller.name)
    """
)


def make_project(folder: Path) -> Path:
    """A job folder holding `steps.py`; job YAML files go next to it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "steps.py").write_text(STEPS)
    return folder


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for_pid(path: Path, timeout: float = 10) -> int:
    """The pid a task wrote to `path` (atomically, see `pid_then_sleep`), once it is there."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return int(path.read_text())
