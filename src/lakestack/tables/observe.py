"""Which table versions a piece of code read and wrote, for whoever listens (tracking, lineage).

Listeners are scoped to a context (a `with` block, per thread and task), so a run records what
its own code touched and nothing else. With no listener, emitting costs one lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TableAccess:
    """One read or write of one Delta version of a workspace table."""

    mode: Literal["read", "write"]
    table: str
    version: int
    location: str
    principal: str


Listener = Callable[[TableAccess], None]
_listeners: ContextVar[tuple[Listener, ...]] = ContextVar("lakestack_table_listeners", default=())


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call `listener` for every table access inside the block."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


def active() -> bool:
    return bool(_listeners.get())


def emit(access: TableAccess) -> None:
    for listener in _listeners.get():
        listener(access)
