"""A real local Ray cluster for the tests: `ray start --head` in a temp dir, stopped by its pids.

`ray stop` would stop every Ray cluster on the machine (other sessions' too), so the cluster is
started in a session of its own and stopped by killing that session plus every process
descended from it (Ray workers run in process groups of their own, as children of the raylet).

Under pytest-xdist the workers of one test run share one cluster (`shared`): the first to need
it starts it, the last to finish stops it. `xdist_group` alone cannot ensure one cluster: with
pytest 9.2 and pytest-xdist 3.8 the group marker no longer reaches the scheduler (xdist renames
`item._nodeid`, which pytest 9 does not read), so grouped tests spread over the workers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's minimum is 75 MiB; the tests move no objects


@dataclass(frozen=True)
class RayCluster:
    """A running head node: its GCS address and the `ray start` session (process group)."""

    address: str
    session: int
    temp_dir: Path
    #: The cluster's own auth token: a driver needs RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=this.
    token: str

    def auth_env(self) -> dict[str, str]:
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(num_cpus: int = 2) -> RayCluster:
    """Start a head node on free ports; raises with Ray's output when it does not come up."""
    # Short: Ray puts unix sockets under it, and a socket path may hold only 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="lsray-", dir="/tmp"))
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        f"--num-cpus={num_cpus}",
        "--num-gpus=0",
        f"--object-store-memory={OBJECT_STORE_BYTES}",
        "--include-dashboard=false",
        f"--dashboard-agent-listen-port={free_port()}",
        "--disable-usage-stats",
        f"--temp-dir={temp_dir}",
    ]
    # Token authentication with a token of its own: Ray would otherwise pick its mode from
    # whatever ~/.ray/auth_token other Ray users on this machine left (or leave) there.
    token = secrets.token_hex(32)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RAY_ADDRESS", "RAY_AUTH"))}
    env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    started = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    cluster = RayCluster(f"127.0.0.1:{port}", started.pid, temp_dir, token)
    try:
        output, _ = started.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        stop(cluster)
        raise RuntimeError("ray start --head did not finish in 90 s") from None
    if started.returncode != 0:
        stop(cluster)
        raise RuntimeError(f"ray start --head failed: {output.decode(errors='replace')[-2000:]}")
    return cluster


def stop(cluster: RayCluster) -> None:
    """Kill the cluster's processes (SIGTERM, then SIGKILL) and remove its temp dir."""
    for sig, wait in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 3.0)):
        pids = _cluster_pids(cluster.session)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while _cluster_pids(cluster.session) and time.monotonic() < deadline:
            time.sleep(0.05)
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)


def _cluster_pids(session: int) -> set[int]:
    """Live processes of the `ray start` session and all their descendants."""
    parents: dict[int, int] = {}
    members: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] in ("Z", "X"):
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        if int(fields[3]) == session:  # its session id
            members.add(pid)
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in members} - members
        members |= more
        grew = bool(more)
    return members


@contextlib.contextmanager
def shared(run_id: str) -> Iterator[RayCluster]:
    """The cluster of test run `run_id`, shared by the processes of that run that enter this."""
    folder = Path(tempfile.gettempdir()) / f"lakestack-ray-{run_id}"
    folder.mkdir(mode=0o700, exist_ok=True)
    state_file = folder / "cluster.json"
    with _locked(folder):
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        users = [pid for pid in state.get("users", []) if _alive(pid)]
        if state and users and _cluster_pids(state["cluster"]["session"]):
            known = state["cluster"]
            cluster = RayCluster(known["address"], known["session"], Path(known["temp_dir"]), known["token"])
        else:
            cluster = start()
        state_file.touch(mode=0o600)  # it holds the cluster's token
        state_file.write_text(
            json.dumps(
                {
                    "cluster": {**asdict(cluster), "temp_dir": str(cluster.temp_dir)},
                    "users": [*users, os.getpid()],
                }
            )
        )
    try:
        yield cluster
    finally:
        with _locked(folder):
            state = json.loads(state_file.read_text())
            users = [pid for pid in state["users"] if pid != os.getpid() and _alive(pid)]
            if users:
                state_file.write_text(json.dumps({**state, "users": users}))
            else:
                stop(cluster)
                state_file.unlink()
        if not users:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with (folder / "lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
