"""Lineage nodes and edges in the metastore.

A node is one versioned thing (`table dev.silver.transactions v4`, `model dev.churn.model/3`)
or one activity (`run 3f2a...`, `commit 9c1e...`); an edge says its source went into making its
target. Recording is idempotent: the same edge recorded twice is stored once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import LineageEdge, LineageNode

# Kinds whose name is a governed securable (masked for callers who may not see it).
GOVERNED_KINDS = ("table", "model")


@dataclass(frozen=True)
class NodeRef:
    """Names one lineage node: `NodeRef("table", "dev.silver.tx", 4)`, `NodeRef("run", run_id)`."""

    kind: str
    name: str
    version: int | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}" + ("" if self.version is None else f"@{self.version}")

    def __str__(self) -> str:
        if self.kind == "table":
            return f"table {self.name}" + ("" if self.version is None else f" v{self.version}")
        if self.kind == "model":
            return f"model {self.name}" + ("" if self.version is None else f"/{self.version}")
        short = self.name[:12] if self.kind in ("run", "commit") else self.name
        return f"{self.kind.replace('_', ' ')} {short}"


@dataclass(frozen=True)
class Node:
    """A node as stored: its reference, what was recorded about it, and when."""

    ref: NodeRef
    properties: dict[str, Any] = field(default_factory=dict)
    hidden: bool = False


class LineageStore:
    def __init__(self, metastore: Metastore) -> None:
        self._metastore = metastore

    def record(
        self,
        edges: Iterable[tuple[NodeRef, NodeRef]],
        principal: str,
        properties: dict[NodeRef, dict[str, Any]] | None = None,
    ) -> None:
        """Store `edges` (and any node `properties`) in one transaction; repeats are no-ops.

        Two processes recording the same node at once collide on its unique key: the loser
        retries, and then finds the winner's row.
        """
        edges = list(edges)
        properties = properties or {}
        for attempt in range(5):
            try:
                with self._metastore.session() as session:
                    ids: dict[NodeRef, int] = {}
                    for ref in {r for pair in edges for r in pair} | set(properties):
                        ids[ref] = self._node_id(session, ref, properties.get(ref))
                    for source, target in edges:
                        self._edge(session, ids[source], ids[target], principal)
                return
            except IntegrityError:
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))

    def _node_id(self, session: Session, ref: NodeRef, properties: dict[str, Any] | None) -> int:
        row = session.scalar(select(LineageNode).where(LineageNode.key == ref.key))
        if row is None:
            row = LineageNode(
                key=ref.key, kind=ref.kind, name=ref.name, version=ref.version, properties=properties or {}
            )
            session.add(row)
            session.flush()
        elif properties:
            row.properties = {**(row.properties or {}), **properties}
        return row.id

    def _edge(self, session: Session, source: int, target: int, principal: str) -> None:
        found = session.scalar(
            select(LineageEdge.id).where(LineageEdge.source_id == source, LineageEdge.target_id == target)
        )
        if found is None:
            session.add(LineageEdge(source_id=source, target_id=target, created_by=principal))
            session.flush()

    def nodes(self, refs: Iterable[NodeRef]) -> dict[NodeRef, dict[str, Any]]:
        """The stored properties of each of `refs` that exists."""
        keys = {ref.key: ref for ref in refs}
        if not keys:
            return {}
        with self._metastore.session() as session:
            rows = session.execute(
                select(LineageNode.key, LineageNode.properties).where(LineageNode.key.in_(keys))
            )
            return {keys[key]: props or {} for key, props in rows}

    def neighbours(self, refs: Iterable[NodeRef], direction: str) -> list[tuple[NodeRef, NodeRef]]:
        """Edges into `refs` (direction "up") or out of them ("down"), as (source, target)."""
        keys = [ref.key for ref in refs]
        if not keys:
            return []
        source, target = aliased(LineageNode), aliased(LineageNode)
        near = target if direction == "up" else source
        stmt = (
            select(source.kind, source.name, source.version, target.kind, target.name, target.version)
            .join(LineageEdge, LineageEdge.source_id == source.id)
            .join(target, LineageEdge.target_id == target.id)
            .where(near.key.in_(keys))
            .order_by(LineageEdge.id)
        )
        with self._metastore.session() as session:
            return [
                (NodeRef(sk, sn, sv), NodeRef(tk, tn, tv)) for sk, sn, sv, tk, tn, tv in session.execute(stmt)
            ]

    def last_written(self, table: str, version: int | None) -> NodeRef | None:
        """The newest version of `table` at or before `version` that a tracked activity wrote."""
        stmt = (
            select(func.max(LineageNode.version))
            .join(LineageEdge, LineageEdge.target_id == LineageNode.id)
            .where(LineageNode.kind == "table", LineageNode.name == table)
        )
        if version is not None:
            stmt = stmt.where(LineageNode.version <= version)
        with self._metastore.session() as session:
            found = session.scalar(stmt)
        return None if found is None else NodeRef("table", table, found)

    def versions_read(self, kind: str, name: str) -> list[NodeRef]:
        """Every stored version of `name` that something read (for downstream of a whole table)."""
        stmt = (
            select(LineageNode.version)
            .join(LineageEdge, LineageEdge.source_id == LineageNode.id)
            .where(LineageNode.kind == kind, LineageNode.name == name)
            .distinct()
        )
        with self._metastore.session() as session:
            return [NodeRef(kind, name, v) for v in sorted(session.scalars(stmt), key=lambda v: v or 0)]
