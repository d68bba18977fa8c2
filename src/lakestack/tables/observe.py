"""Which table versions a piece of code read and wrote, for whoever listens (tracking, lineage).

Listeners are scoped to a context (a `with` block, per thread and task), so a run records what
its own code touched and nothing else. With no listener, emitting costs one lookup.

Code that reads tables on behalf of a derived thing (a training set reading its feature tables)
wraps the reads in `consuming(...)`, so lineage can say the tables went into that thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Literal


@dataclass(frozen=True)
class Consumer:
    """A derived thing that reads tables, e.g. kind "training_set", name its digest."""

    kind: str
    name: str
    properties: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class TableAccess:
    """One read or write of one Delta version of a workspace table."""

    mode: Literal["read", "write"]
    table: str
    version: int
    location: str
    principal: str
    consumer: Consumer | None = None


Listener = Callable[[TableAccess], None]
_listeners: ContextVar[tuple[Listener, ...]] = ContextVar("lakestack_table_listeners", default=())
_consumer: ContextVar[Consumer | None] = ContextVar("lakestack_table_consumer", default=None)


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Call `listener` for every table access inside the block."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


@contextmanager
def consuming(consumer: Consumer) -> Iterator[None]:
    """Attribute the table reads inside the block to `consumer`."""
    token = _consumer.set(consumer)
    try:
        yield
    finally:
        _consumer.reset(token)


def active() -> bool:
    return bool(_listeners.get())


def emit(access: TableAccess) -> None:
    consumer = _consumer.get()
    if consumer is not None and access.mode == "read":
        access = replace(access, consumer=consumer)
    for listener in _listeners.get():
        listener(access)
