"""Unchecked storage of securables (catalogs, schemas, tables, ...). Access checks live in `access`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import Securable
from lakestack.catalog.names import Name
from lakestack.catalog.privileges import TOP_LEVEL_KINDS
from lakestack.errors import SecurableExists, SecurableNotFound

LEVEL_KIND = {1: "catalog", 2: "schema"}


@dataclass(frozen=True)
class SecurableInfo:
    kind: str
    full_name: str
    owner: str
    comment: str | None
    properties: dict[str, Any]
    storage_location: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    id: int = field(repr=False, compare=False)


def to_info(row: Securable) -> SecurableInfo:
    return SecurableInfo(
        row.kind,
        row.full_name,
        row.owner,
        row.comment,
        dict(row.properties or {}),
        row.storage_location,
        row.created_at,
        row.created_by,
        row.updated_at,
        row.updated_by,
        id=row.id,
    )


def kind_of(name: Name, object_kind: str = "table") -> str:
    if object_kind in TOP_LEVEL_KINDS:
        return object_kind
    return LEVEL_KIND.get(len(name.parts), object_kind)


def create_hint(kind: str, name: Name) -> str:
    if kind == "catalog":
        return f"Create it with: lakestack catalogs create {name}"
    if kind == "schema":
        return f"Create it with: lakestack schemas create {name}"
    if kind in TOP_LEVEL_KINDS:
        return f"List what exists with: lakestack {kind}s ls"
    return f"List what exists with: lakestack {kind}s ls {name.parent}"


class SecurableStore:
    def __init__(self, metastore: Metastore) -> None:
        self._metastore = metastore

    def find(self, session: Session, kind: str, name: Name) -> Securable | None:
        return session.scalar(
            select(Securable).where(Securable.kind == kind, Securable.full_name == str(name))
        )

    def find_path(self, session: Session, name: Name, kind: str) -> list[Securable | None]:
        """The rows for `name`'s catalog, schema and itself (None where missing), in one query."""
        levels = [*name.ancestors(), name]
        wanted = [(kind_of(level, kind), str(level)) for level in levels]
        stmt = select(Securable).where(
            or_(*(and_(Securable.kind == k, Securable.full_name == n) for k, n in wanted))
        )
        found = {(r.kind, r.full_name): r for r in session.scalars(stmt)}
        return [found.get(key) for key in wanted]

    def require(self, session: Session, kind: str, name: Name) -> Securable:
        row = self.find(session, kind, name)
        if row is None:
            siblings = session.scalars(select(Securable.full_name).where(Securable.kind == kind)).all()
            raise SecurableNotFound(kind, str(name), siblings, hint=create_hint(kind, name))
        return row

    def create(
        self,
        session: Session,
        kind: str,
        name: Name,
        owner: str,
        comment: str | None = None,
        properties: dict[str, Any] | None = None,
        storage_location: str | None = None,
    ) -> Securable:
        if self.find(session, kind, name) is not None:
            raise SecurableExists(kind, str(name))
        parent_id = None
        if len(name.parts) > 1:
            parent_id = self.require(session, kind_of(name.parent), name.parent).id
        row = Securable(
            kind=kind,
            full_name=str(name),
            parent_id=parent_id,
            owner=owner,
            comment=comment,
            properties=dict(properties or {}),
            storage_location=storage_location,
            created_by=owner,
            updated_by=owner,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # a concurrent create won the race
            raise SecurableExists(kind, str(name)) from None
        return row

    def children(self, session: Session, parent: Securable | None, kind: str) -> list[Securable]:
        stmt = select(Securable).where(Securable.kind == kind).order_by(Securable.full_name)
        stmt = stmt.where(Securable.parent_id == parent.id if parent else Securable.parent_id.is_(None))
        return list(session.scalars(stmt))

    def descendants(self, session: Session, row: Securable) -> list[Securable]:
        """Every securable below `row`, deepest first."""
        found: list[Securable] = []
        frontier = [row.id]
        while frontier:
            level = list(session.scalars(select(Securable).where(Securable.parent_id.in_(frontier))))
            found.extend(level)
            frontier = [r.id for r in level]
        return list(reversed(found))

    def touch(self, row: Securable, by: str) -> None:
        row.updated_at = datetime.now(UTC)
        row.updated_by = by
