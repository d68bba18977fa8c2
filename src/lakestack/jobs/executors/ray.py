"""Run task attempts on a Ray cluster: `compute: ray` on a job or a task.

Each attempt is one Ray task (1 CPU). On the worker that runs it, the attempt runs exactly as it
would here: `LocalExecutor` starts `python -m lakestack.jobs.entrypoint <folder>` in its own
process group, with its output in the folder's log files, and kills the group on timeout or
stop. Results come back as files in the attempt folder, so the workspace folder must be on
storage every node mounts at the same path (a shared file system); nothing else crosses over.

Where the cluster is: `LAKESTACK_RAY_ADDRESS`, else `[jobs] ray_address` in `workspace.toml`:
`host:6379` (the GCS of a `ray start --head` cluster), `ray://host:10001` (Ray Client, needs
`ray[client]`), `auto` (the cluster `ray start` started on this machine) or `local` (a new Ray
instance inside the runner process). Unset, it is what `ray.init()` does: `RAY_ADDRESS`, else
the cluster the last `ray start` on this machine started, else a new local instance.

Stopping: the runner writes `stop` (holding why) into the attempt folder and the worker, which
polls it, kills the group as the local executor does (SIGTERM, then SIGKILL after the grace
period). A file rather than `ray.cancel`: a cancel interrupts the worker's Python with a
KeyboardInterrupt (or, forced, kills the worker), which skips the graceful SIGTERM; the file
needs nothing but the folder the attempt relies on anyway. Should the worker not answer (hung,
or the folder is not shared after all), the Ray task is force-canceled after the grace period
plus `STOP_ANSWER_SECONDS`. The timeout is the runner's, counted from submission (time spent
waiting for a free CPU counts, as it would locally), and sent the same way; the worker also
gets it, as a backstop.

A worker that dies (killed, its node lost) ends the attempt FAILED, naming the Ray error. Ray
does not retry the task itself (`max_retries=0`): the task's own `max_retries` decides. The task
process dies with its worker, since the entry point watches its parent
(`LAKESTACK_RUNNER_PID` is the worker's pid there).

Ray allows one cluster connection per process (`ray.init` is process-wide), so all Ray
executors of a process share one, opened by the first and closed when the last one closes: a
process connected to a cluster is ended by Ray when that cluster goes away, and a long-lived
process (a server) must not die because a cluster restarted between two runs. A new connection
gets new worker processes (the first task of a run pays 1-5 s to start one). A Ray instance this
process started itself stays until the process exits (starting one takes 10-20 s);
`disconnect()` closes it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lakestack.config import CONFIG_FILE, RAY_ADDRESS_PATTERN, WorkspaceConfig
from lakestack.errors import JobError
from lakestack.jobs.executors.base import Attempt, AttemptResult, Ended, Executor
from lakestack.jobs.executors.local import LocalExecutor

ADDRESS_ENV = "LAKESTACK_RAY_ADDRESS"
#: Written into the attempt folder to stop the attempt; holds "CANCELED" or "TIMEDOUT".
STOP_FILE = "stop"
POLL_SECONDS = 0.05
#: How often the worker looks for the stop file (a stat on shared storage; not every 20 ms).
STOP_POLL_SECONDS = 0.1
#: How long after the grace period a worker may take to answer a stop before it is force-canceled.
STOP_ANSWER_SECONDS = 10.0
PROBE_SECONDS = 3.0
FIX = (
    "Start the cluster (`ray start --head --port 6379`) or point `[jobs] ray_address` in "
    f"workspace.toml (or {ADDRESS_ENV}) at a running one"
)


def configured_address(workspace_folder: Path | None) -> str | None:
    """The Ray address runs of this workspace use: `LAKESTACK_RAY_ADDRESS`, else the workspace's
    `[jobs] ray_address`, else None (what `ray.init()` picks)."""
    override = os.environ.get(ADDRESS_ENV, "").strip()
    if override:
        if not RAY_ADDRESS_PATTERN.fullmatch(override):
            raise JobError(
                f"{ADDRESS_ENV}='{override}' is not a Ray address: use host:port, ray://host:port, "
                "auto or local."
            )
        return override
    if workspace_folder is None or not (workspace_folder / CONFIG_FILE).exists():
        return None
    return WorkspaceConfig.load(workspace_folder).jobs.ray_address


class RayExecutor(Executor):
    """Attempts as Ray tasks on the cluster at `address` (None: what `ray.init()` picks);
    `grace_seconds` between SIGTERM and SIGKILL, as for the local executor."""

    name = "ray"

    def __init__(self, address: str | None = None, grace_seconds: float = 5.0) -> None:
        if importlib.util.find_spec("ray") is None:
            raise JobError("compute: ray needs Ray on the runner's machine: pip install 'lakestack[ray]'.")
        self.address = address
        self.grace_seconds = grace_seconds
        self._lock = threading.Lock()
        self._remote: Any = None
        self._closed = False

    def run(self, attempt: Attempt, stop: Callable[[], bool]) -> AttemptResult:
        """Run the attempt as a Ray task and wait for it; stop it on timeout or once `stop()`."""
        try:
            remote = self._connected()
        except JobError as exc:
            return AttemptResult("FAILED", None, exc.message)
        import ray

        # The worker's own environment (the cluster's) plus what the runner passes.
        pythonpath = os.environ.get("PYTHONPATH")
        env = {**attempt.env, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
        sent = _Stopper(attempt.directory, attempt.timeout_seconds, self.grace_seconds)
        name = f"lakestack {attempt.run_id}/{attempt.task_key}#{attempt.number}"  # in `ray list tasks`
        finished, ref = False, None
        try:
            ref = remote.options(name=name).remote(replace(attempt, env=env), self.grace_seconds)
            while not ray.wait([ref], timeout=POLL_SECONDS)[0]:
                if sent.check(stop) == "unanswered":
                    ray.cancel(ref, force=True)
                    finished = True
                    return sent.result(None, "the Ray worker did not stop in time and was killed")
            finished = True
            state, code, error = ray.get(ref)
        except ray.exceptions.RayError as exc:
            finished = True
            return sent.result(None, None) if sent.reason else AttemptResult("FAILED", None, _ray_error(exc))
        finally:
            if not finished and ref is not None:  # the runner failed (a bug, Ctrl-C): leave nothing
                sent.send("CANCELED")
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
        if sent.reason is not None and state in ("CANCELED", "TIMEDOUT"):
            return sent.result(code, None)
        return AttemptResult(state, code, error)

    def close(self) -> None:
        """Let go of the cluster; the process's connection stays open for the next run."""
        with self._lock:
            if self._remote is not None and not self._closed:
                _CONNECTION.release()
            self._closed = True

    def _connected(self) -> Any:
        """The Ray remote function, connecting this process to the cluster on first use."""
        with self._lock:
            if self._closed:
                raise JobError("This Ray executor is closed; the runner makes a new one per run.")
            if self._remote is None:
                import ray

                _CONNECTION.acquire(self.address)
                pythonpath = os.environ.get("PYTHONPATH")
                # The worker process itself must import this lakestack (it runs `_run_on_worker`),
                # so a cluster started from this venv gets the runner's PYTHONPATH too.
                options: dict[str, Any] = {"num_cpus": 1, "max_retries": 0}
                if pythonpath:
                    options["runtime_env"] = {"env_vars": {"PYTHONPATH": pythonpath}}
                # Ray retries tasks whose worker died by default; the task's max_retries decides here.
                self._remote = ray.remote(**options)(_run_on_worker)
            return self._remote


def disconnect() -> None:
    """Close this process's Ray connection (before stopping a cluster it is connected to: a
    connected process exits with its cluster)."""
    _CONNECTION.shutdown()


@dataclass
class _Stopper:
    """The runner's side of stopping: decides when, writes the stop file, then waits for it."""

    directory: Path
    timeout: float | None
    grace: float
    reason: Ended | None = None
    sent_at: float = 0.0

    def __post_init__(self) -> None:
        self.deadline = None if not self.timeout else time.monotonic() + self.timeout

    def check(self, stop: Callable[[], bool]) -> str | None:
        now = time.monotonic()
        if self.reason is None:
            if self.deadline is not None and now >= self.deadline:
                self.send("TIMEDOUT")
            elif stop():
                self.send("CANCELED")
            return None
        if now - self.sent_at > self.grace + STOP_ANSWER_SECONDS:
            return "unanswered"
        return None

    def send(self, reason: Ended) -> None:
        if self.reason is None:
            self.reason, self.sent_at = reason, time.monotonic()
            with contextlib.suppress(OSError):  # a folder gone is an attempt gone
                (self.directory / STOP_FILE).write_text(reason)

    def result(self, code: int | None, detail: str | None) -> AttemptResult:
        why = f" ({detail})" if detail else ""
        if self.reason == "TIMEDOUT":
            return AttemptResult("TIMEDOUT", code, f"timed out after {self.timeout:g} s{why}")
        return AttemptResult("CANCELED", code, f"canceled{why}")


def _run_on_worker(attempt: Attempt, grace_seconds: float) -> tuple[str, int | None, str | None]:
    """The Ray task: run the attempt on this node as the local executor would."""
    directory = attempt.directory
    if not directory.is_dir():
        return (
            "FAILED",
            None,
            f"the attempt folder '{directory}' does not exist on Ray node {socket.gethostname()}: "
            "put the workspace on storage every node of the cluster mounts at the same path",
        )
    stop_file = directory / STOP_FILE
    if stop_file.exists():  # stopped while it waited for a free CPU: start nothing
        return "CANCELED", None, "canceled"
    checked_at, seen = 0.0, False

    def stopped() -> bool:
        nonlocal checked_at, seen
        now = time.monotonic()
        if now - checked_at >= STOP_POLL_SECONDS:
            checked_at, seen = now, stop_file.exists()
        return seen

    result = LocalExecutor(grace_seconds).run(attempt, stopped)
    return result.state, result.exit_code, result.error


def _ray_error(exc: Exception) -> str:
    import ray.exceptions as errors

    name = type(exc).__name__
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, errors.RayTaskError):
        cause = exc.cause if isinstance(exc.cause, BaseException) else None
        what = f"{type(cause).__name__}: {cause}" if cause is not None else first
        return (
            f"the Ray task running the attempt failed on the worker ({what}); the cluster's nodes "
            "need lakestack installed (or the runner's PYTHONPATH) and the workspace folder mounted"
        )
    if isinstance(exc, errors.WorkerCrashedError | errors.NodeDiedError | errors.LocalRayletDiedError):
        return f"the Ray worker running the attempt died ({name}): it was killed or its node was lost"
    if isinstance(exc, errors.RuntimeEnvSetupError):
        return f"the Ray cluster could not set up the attempt's environment ({name}: {first})"
    return f"Ray could not run the attempt ({name}: {first})"


class _Connection:
    """This process's connection to a Ray cluster, shared by every RayExecutor in it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._address: str | None = None
        self._ours = False
        self._started_here = False
        self._users = 0

    def acquire(self, address: str | None) -> None:
        import ray

        with self._lock:
            if ray.is_initialized():
                if not self._ours:  # the process's own ray.init (a notebook, a script): use it
                    self._users += 1
                    return
                if self._address == address:
                    self._users += 1
                    return
                if self._users:
                    raise JobError(
                        f"This process is connected to the Ray cluster at '{self._address or 'default'}' "
                        f"for another run and Ray allows one cluster per process, so it cannot use "
                        f"'{address or 'default'}': give every workspace served by one process the same "
                        "ray_address."
                    )
                _probe(address)  # before letting go of a connection that works
                ray.shutdown()
                self._ours = False
            else:
                _probe(address)
            if address in (None, "local"):
                # A Ray instance this process starts does not report usage unless the user asked.
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                _on_driver_thread(
                    lambda: ray.init(
                        address=address,
                        namespace="lakestack",
                        include_dashboard=False,
                        log_to_driver=False,  # the task's output is in its attempt folder
                        logging_level=logging.WARNING,
                    )
                )
            except Exception as exc:  # ConnectionError, ValueError, RuntimeError: all mean the same
                with contextlib.suppress(Exception):
                    ray.shutdown()
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                fix = FIX
                if "auth" in str(exc).lower():  # never echo a token: only say where it goes
                    fix = (
                        "The cluster uses token authentication: give the runner RAY_AUTH_MODE=token "
                        "and the cluster's token (RAY_AUTH_TOKEN, or ~/.ray/auth_token)"
                    )
                raise JobError(
                    f"Cannot connect to the Ray cluster at '{address or 'default'}' ({first}). {fix}."
                ) from exc
            self._address, self._ours, self._users = address, True, 1
            # Whether ray.init started a Ray instance here (a head node) rather than connecting.
            node = getattr(getattr(ray, "_private", None), "worker", None)
            self._started_here = bool(getattr(getattr(node, "_global_node", None), "head", False))

    def release(self) -> None:
        import ray

        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._ours and not self._started_here and ray.is_initialized():
                ray.shutdown()
                self._address, self._ours = None, False

    def shutdown(self) -> None:
        import ray

        with self._lock:
            if self._ours and ray.is_initialized():
                ray.shutdown()
            self._address, self._ours, self._users = None, False, 0


def _on_driver_thread(call: Callable[[], object]) -> None:
    """Run `call` on a thread that lives as long as the process.

    A Ray instance started here (`local`, or no cluster found) has its GCS and raylet killed by
    the kernel when the *thread* that started them ends (Ray sets PR_SET_PDEATHSIG on them), and
    the runner's threads end with each task attempt.
    """
    global _DRIVER
    with _DRIVER_LOCK:
        if _DRIVER is None:
            _DRIVER = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(_DRIVER,), name="lakestack-ray-driver", daemon=True).start()
        requests = _DRIVER
    done: Future[object] = Future()
    requests.put((call, done))
    done.result()


def _serve(requests: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]]) -> None:
    # Ray sets no SIGTERM handler off the main thread and says so; the runner wants none.
    logging.getLogger("ray._private.worker").addFilter(
        lambda record: "SIGTERM handler is not set" not in record.getMessage()
    )
    while True:
        call, done = requests.get()
        try:
            done.set_result(call())
        except BaseException as exc:
            done.set_exception(exc)


def _probe(address: str | None) -> None:
    """Fail fast, naming the address, when nothing listens there (ray.init would retry ~1 min)."""
    if address is None or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS):
            pass
    except (OSError, ValueError) as exc:
        raise JobError(f"Cannot reach the Ray cluster at '{address}' ({exc}). {FIX}.") from exc


_CONNECTION = _Connection()
_DRIVER: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]] | None = None
_DRIVER_LOCK = threading.Lock()
