"""The protocol between bench modules and `run.py`.

A bench module is `bench/bench_<name>.py` exposing `run(scale: str, repeats: int) -> list[Row]`:
for every benchmark it times the lakestack call and its anchor (plain deltalake doing the same
work on the same data) `repeats` times, in the same process and run, and returns the raw seconds.
A module may also measure peak memory (`child_peak`) and skip a row it cannot run (`skipped`).
"""

from __future__ import annotations

import gc
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Row:
    """One benchmark: wall-clock seconds of each run, through lakestack and through the anchor.

    `lakestack[i]` and `plain[i]` are a pair: they ran back to back on the same data. Latency
    rows hold one entry per call and set `p99_target`: their verdict is lakestack's p99.
    """

    name: str
    lakestack: list[float]
    plain: list[float]
    target: float = 0.10  # the overhead lakestack should stay under (0.10 = 10 %; -0.90 = 10x faster)
    p99_target: float | None = None  # for latency rows: lakestack's p99 (seconds) must stay under this
    anchor: str = "anchor"  # what the anchor is, when not the module's usual one
    peak_mib: tuple[Memory, Memory] | None = None  # lakestack's and the anchor's, one run each
    skipped: str | None = None  # why the benchmark did not run (then there are no runs)


@dataclass(frozen=True)
class Memory:
    """Resident memory of a fresh process that ran one call: its peak, and where it stood just
    before the call (imports and inputs loaded), in MiB."""

    peak: float
    baseline: float = field(default=0.0)

    @property
    def added(self) -> float:
        return self.peak - self.baseline


def skipped(name: str, reason: str) -> Row:
    """A benchmark that could not run here, reported with the reason instead of numbers."""
    return Row(name, [], [], skipped=reason)


def timed(operation: Callable[[], T]) -> tuple[float, T]:
    """Seconds `operation` takes (after a garbage collection, so no earlier garbage is billed to it)."""
    gc.collect()
    start = time.perf_counter()
    result = operation()
    return time.perf_counter() - start, result


def rss_mib() -> float:
    """This process's resident memory now (Linux)."""
    return _status_mib("VmRSS")


def reset_peak_rss() -> None:
    """Measure the peak from here on: Linux resets the high-water mark to the current RSS."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_rss_mib() -> float:
    """This process's peak resident memory since `reset_peak_rss` (or its start): native
    allocations (Arrow, DuckDB) included, which tracemalloc would not see. Not getrusage's
    ru_maxrss, which in a child also counts the parent's memory at the fork."""
    return _status_mib("VmHWM")


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status: peak memory is measured on Linux only")


def child_report(**fields: object) -> None:
    """The last line a measuring child prints: JSON that `child_peak` reads."""
    print(json.dumps(fields), flush=True)


def child_run(command: list[str]) -> dict[str, Any]:
    """Run a measuring child to the end and return its JSON report (its stderr passes through)."""
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def child_peak(command: list[str]) -> Memory:
    """Peak and baseline RSS that a child measured around its one call."""
    report = child_run(command)
    return Memory(float(report["peak_mib"]), float(report["baseline_mib"]))
