"""The protocol between bench modules and `run.py`.

A bench module is `bench/bench_<name>.py` exposing `run(scale: str, repeats: int) -> list[Row]`:
for every benchmark it times the lakestack call and its anchor (plain deltalake doing the same
work on the same data) `repeats` times, in the same process and run, and returns the raw seconds.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

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
    target: float = 0.10  # the overhead lakestack should stay under (0.10 = 10 %)
    p99_target: float | None = None  # for latency rows: lakestack's p99 (seconds) must stay under this


def timed(operation: Callable[[], T]) -> tuple[float, T]:
    """Seconds `operation` takes (after a garbage collection, so no earlier garbage is billed to it)."""
    gc.collect()
    start = time.perf_counter()
    result = operation()
    return time.perf_counter() - start, result
