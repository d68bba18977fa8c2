"""`ws.lineage`: what made a model version or a table version, and what it went into.

Edges are recorded without being asked while code runs inside an activity (an MLflow run
started with `ws.tracking.start_run`, or a job task: `job_run <job>#<run id>/<task key>`):
every table version it reads goes into it, every table version it writes comes out of it, a
training set stands between the feature table versions it joined and the run, and registering
a run's model adds run -> model version.
The code commit an activity ran goes into it too.

A table version with no recorded writer gets its lineage from the newest earlier version that
has one (the table as it was last written by tracked code).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from lakestack.catalog.access import AccessControl
from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import Securable
from lakestack.catalog.names import Name
from lakestack.catalog.principals import Caller
from lakestack.catalog.securables import SecurableStore
from lakestack.errors import InvalidParameter, NotFound
from lakestack.lineage.store import GOVERNED_KINDS, LineageStore, Node, NodeRef
from lakestack.tables import observe

Direction = Literal["upstream", "downstream"]
MAX_NODES = 500

# The activity code is running in, and the lineage store that records it.
_current: ContextVar[tuple[Lineage, NodeRef] | None] = ContextVar("lakestack_lineage_activity", default=None)


@dataclass(frozen=True)
class LineageGraph:
    """Nodes reachable from `nodes[0]` in one direction; `edges` are (source, target) indexes.

    Nodes the caller may not see are kept (the chain stays whole) but `hidden`, with no name.
    """

    direction: Direction
    nodes: list[Node]
    edges: list[tuple[int, int]]

    @property
    def root(self) -> Node:
        return self.nodes[0]

    def next_of(self, index: int) -> list[int]:
        """Indexes one step further from the root than `index` (its inputs, going upstream)."""
        if self.direction == "upstream":
            return [s for s, t in self.edges if t == index]
        return [t for s, t in self.edges if s == index]

    def find(self, kind: str) -> list[Node]:
        """The visible nodes of one kind, e.g. every table version upstream of a model."""
        return [n for n in self.nodes if n.ref.kind == kind and not n.hidden]

    def to_dict(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "nodes": [
                {"id": i, "kind": n.ref.kind, "hidden": True}
                if n.hidden
                else {
                    "id": i,
                    "kind": n.ref.kind,
                    "name": n.ref.name,
                    "version": n.ref.version,
                    "properties": n.properties,
                }
                for i, n in enumerate(self.nodes)
            ],
            "edges": [{"source": s, "target": t} for s, t in self.edges],
        }


class Lineage:
    def __init__(
        self,
        metastore: Metastore,
        securables: SecurableStore,
        access: AccessControl,
        caller: Caller,
        resolve_model: Callable[[str], tuple[str, int]],
        table_version: Callable[[str], int],
    ) -> None:
        self._store = LineageStore(metastore)
        self._metastore = metastore
        self._securables = securables
        self._access = access
        self._caller = caller
        self._resolve_model = resolve_model
        self._table_version = table_version

    # --- recording -------------------------------------------------------------------------

    @contextmanager
    def activity(
        self, ref: NodeRef, properties: dict[str, Any] | None = None, commit: dict[str, str] | None = None
    ) -> Iterator[None]:
        """Record what the code inside the block reads and writes as inputs and outputs of `ref`."""
        edges: list[tuple[NodeRef, NodeRef]] = []
        props = {ref: properties or {}}
        if commit and commit.get("sha"):
            code = NodeRef("commit", commit["sha"])
            edges.append((code, ref))
            props[code] = {k: v for k, v in commit.items() if k != "sha"}
        self._store.record(edges, self._caller.name, props)
        token = _current.set((self, ref))
        try:
            with observe.listening(_Recorder(self._store, ref, self._caller.name)):
                yield
        finally:
            _current.reset(token)

    def link(
        self, source: NodeRef, target: NodeRef, properties: dict[NodeRef, dict[str, Any]] | None = None
    ) -> None:
        """Record one edge now (e.g. run -> the model version registered from it)."""
        self._store.record([(source, target)], self._caller.name, properties)

    def used(self, ref: NodeRef) -> None:
        """Record that the running activity (if any) used `ref`, e.g. loaded a model version."""
        current = _current.get()
        if current is not None and current[0] is self:
            self._store.record([(ref, current[1])], self._caller.name)

    # --- reading ---------------------------------------------------------------------------

    def upstream(self, target: str, version: int | None = None, depth: int = 20) -> LineageGraph:
        """What went into `target`: a table (`dev.churn.features`, at `version` or as it is
        now), a model (`prod.churn.model@champion`, `prod.churn.model/3`) or `run:<id>`,
        down to the table versions and code commits at the start of the chain."""
        return self._walk(self._start(target, version, "upstream"), "upstream", depth)

    def downstream(self, target: str, version: int | None = None, depth: int = 20) -> LineageGraph:
        """What `target` went into: runs, training sets, tables and model versions made from it.
        A table without `version` starts from every version of it that something read."""
        return self._walk(self._start(target, version, "downstream"), "downstream", depth)

    def _start(self, target: str, version: int | None, direction: Direction) -> NodeRef:
        """The node to walk from; checks the caller may read the table or model it names."""
        text = target.strip()
        for kind in ("run", "commit", "job_run"):
            if text.startswith(f"{kind}:"):
                ref = NodeRef(kind, text.split(":", 1)[1])
                if not self._store.nodes([ref]):
                    raise NotFound(
                        f"No lineage recorded for {kind} '{ref.name}'. Lineage is recorded for code "
                        "run inside ws.tracking.start_run(...) and for job tasks that read or write tables."
                    )
                return ref
        if text.startswith("models:/") or "@" in text or "/" in text:
            return NodeRef(
                "model", *self._resolve_model(text if text.startswith("models:/") else f"models:/{text}")
            )
        name = Name.parse(text, 3)
        with self._metastore.session() as session:
            is_model = self._securables.find(session, "table", name) is None and (
                self._securables.find(session, "model", name) is not None
            )
        if is_model:
            suffix = "" if version is None else f"/{version}"
            return NodeRef("model", *self._resolve_model(f"models:/{name}{suffix}"))
        current = self._table_version(str(name))  # needs SELECT, like reading the table
        if version is None and direction == "upstream":
            version = current  # what made the table as it is now
        return NodeRef("table", str(name), version)

    def _walk(self, root: NodeRef, direction: Direction, depth: int) -> LineageGraph:
        if depth < 1:
            raise InvalidParameter(f"Lineage depth must be at least 1, not {depth}.")
        index: dict[NodeRef, int] = {root: 0}
        order = [root]
        edges: list[tuple[int, int]] = []

        def add(source: NodeRef, target: NodeRef) -> None:
            for ref in (source, target):
                if ref not in index:
                    index[ref] = len(order)
                    order.append(ref)
            pair = (index[source], index[target])
            if pair not in edges:
                edges.append(pair)

        frontier = [root]
        for _ in range(depth):
            if not frontier or len(order) >= MAX_NODES:
                break
            known = set(order)
            found = self._step(frontier, direction)
            for source, target in found:
                add(source, target)
            frontier = [ref for ref in order if ref not in known]
        return LineageGraph(direction, self._describe(order), edges)

    def _step(self, frontier: list[NodeRef], direction: Direction) -> list[tuple[NodeRef, NodeRef]]:
        """Edges one step further from the root, including the table-version links."""
        found = self._store.neighbours(frontier, "up" if direction == "upstream" else "down")
        reached = {target if direction == "upstream" else source for source, target in found}
        for ref in frontier:
            if ref.kind != "table" or ref in reached:
                continue
            if direction == "upstream":
                # No tracked writer of this version: it is the table as last written before it.
                written = self._store.last_written(ref.name, ref.version)
                if written is not None and written != ref:
                    found.append((written, ref))
            elif ref.version is None:
                found.extend((ref, read) for read in self._store.versions_read("table", ref.name))
        return found

    def _describe(self, refs: list[NodeRef]) -> list[Node]:
        """Attach stored properties, and hide governed names the caller may not see."""
        stored = self._store.nodes(refs)
        visible: dict[tuple[str, str], bool] = {}
        with self._metastore.session() as session:
            for ref in refs:
                if ref.kind in GOVERNED_KINDS and (ref.kind, ref.name) not in visible:
                    row = self._securables.find(session, ref.kind, Name.parse(ref.name, 3))
                    visible[(ref.kind, ref.name)] = self._can_see(session, row)
        nodes = []
        for ref in refs:
            if visible.get((ref.kind, ref.name), True):
                nodes.append(Node(ref, stored.get(ref, {})))
            else:
                nodes.append(Node(NodeRef(ref.kind, "(hidden)"), {}, hidden=True))
        return nodes

    def _can_see(self, session: Any, row: Securable | None) -> bool:
        if row is None:  # dropped since: only admins may still read its name
            return self._caller.is_admin
        return self._access.can_see(session, self._caller, row)


class _Recorder:
    """Turns the table accesses inside an activity into lineage edges, each once."""

    def __init__(self, store: LineageStore, activity: NodeRef, principal: str) -> None:
        self._store = store
        self._activity = activity
        self._principal = principal
        self._seen: set[tuple[str, str, int, observe.Consumer | None]] = set()

    def __call__(self, access: observe.TableAccess) -> None:
        seen = (access.mode, access.table, access.version, access.consumer)
        if seen in self._seen:
            return
        self._seen.add(seen)
        table = NodeRef("table", access.table, access.version)
        if access.mode == "write":
            self._store.record([(self._activity, table)], self._principal)
            return
        consumer = access.consumer
        if consumer is None:
            self._store.record([(table, self._activity)], self._principal)
            return
        via = NodeRef(consumer.kind, consumer.name)
        self._store.record([(table, via), (via, self._activity)], self._principal, {via: consumer.properties})
