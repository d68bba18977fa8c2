"""Catalogs and schemas: the namespaces every table, model and endpoint lives in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete

from lakestack.catalog.access import AccessControl
from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import Securable
from lakestack.catalog.names import Name
from lakestack.catalog.principals import Caller
from lakestack.catalog.privileges import Privilege
from lakestack.catalog.securables import SecurableInfo, SecurableStore, to_info
from lakestack.errors import Conflict, InvalidParameter

# Names the SQL engine uses, and the folder MLflow artifacts live in under the storage root.
RESERVED_CATALOG_NAMES = frozenset({"main", "temp", "system", "memory", "_mlflow"})

# Called with every securable a drop removed, so the owning area can delete their data.
DropHook = Callable[[list[SecurableInfo]], None]


class _Namespaces:
    kind = ""
    levels = 0

    def __init__(
        self,
        metastore: Metastore,
        securables: SecurableStore,
        access: AccessControl,
        caller: Caller,
        on_drop: DropHook,
    ) -> None:
        self._metastore = metastore
        self._securables = securables
        self._access = access
        self._caller = caller
        self._on_drop = on_drop

    def get(self, name: str) -> SecurableInfo:
        """Describe one {kind}; needs usage of it."""
        parsed = Name.parse(name, self.levels)
        usage = Privilege.USE_CATALOG if self.levels == 1 else Privilege.USE_SCHEMA
        with self._metastore.session() as session:
            return to_info(
                self._access.check(session, self._caller, f"{self.kind}s.get", self.kind, parsed, usage)
            )

    def exists(self, name: str) -> bool:
        """Whether it exists; asking needs usage of its parent (a catalog answers only if visible)."""
        parsed = Name.parse(name, self.levels)
        with self._metastore.session() as session:
            return self._access.exists(session, self._caller, f"{self.kind}s.exists", self.kind, parsed)

    def drop(self, name: str, cascade: bool = False) -> list[SecurableInfo]:
        """Drop it (needs MANAGE or ownership); with `cascade`, everything inside too."""
        parsed = Name.parse(name, self.levels)
        with self._metastore.session() as session:
            row = self._access.check(
                session, self._caller, f"{self.kind}s.drop", self.kind, parsed, Privilege.MANAGE
            )
            inside = self._securables.descendants(session, row)
            if inside and not cascade:
                raise Conflict(
                    f"{self.kind.capitalize()} '{parsed}' is not empty ({len(inside)} object(s) inside). "
                    "Drop them first, or pass cascade=True (CLI: --cascade)."
                )
            dropped = [to_info(r) for r in [*inside, row]]
            session.execute(delete(Securable).where(Securable.id.in_([d.id for d in dropped])))
        self._on_drop(dropped)
        return dropped


class Catalogs(_Namespaces):
    """One catalog per environment: dev, staging, prod, test (and any others an admin creates)."""

    kind = "catalog"
    levels = 1

    def create(
        self,
        name: str,
        comment: str | None = None,
        properties: dict[str, Any] | None = None,
        exist_ok: bool = False,
    ) -> SecurableInfo:
        """Create a catalog; only workspace admins may."""
        parsed = Name.parse(name, 1)
        if parsed.catalog in RESERVED_CATALOG_NAMES:
            raise InvalidParameter(f"Catalog name '{parsed}' is reserved; pick another.")
        self._access.require_admin(self._caller, "catalogs.create", "create catalogs", str(parsed))
        with self._metastore.session() as session:
            existing = self._securables.find(session, "catalog", parsed)
            if existing is not None and exist_ok:
                return to_info(existing)
            row = self._securables.create(session, "catalog", parsed, self._caller.name, comment, properties)
            return to_info(row)

    def list(self) -> list[SecurableInfo]:
        """Catalogs the caller can see."""
        with self._metastore.session() as session:
            rows = self._securables.children(session, None, "catalog")
            return [to_info(r) for r in rows if self._access.can_see(session, self._caller, r)]


class Schemas(_Namespaces):
    """Schemas group the tables and models of one project inside a catalog: `dev.churn`."""

    kind = "schema"
    levels = 2

    def create(
        self,
        name: str,
        comment: str | None = None,
        properties: dict[str, Any] | None = None,
        exist_ok: bool = False,
    ) -> SecurableInfo:
        """Create a schema; needs USE_CATALOG and CREATE_SCHEMA on the catalog."""
        parsed = Name.parse(name, 2)
        with self._metastore.session() as session:
            self._access.check(
                session,
                self._caller,
                "schemas.create",
                "catalog",
                parsed.parent,
                Privilege.CREATE_SCHEMA,
                {"schema": str(parsed)},
            )
            existing = self._securables.find(session, "schema", parsed)
            if existing is not None and exist_ok:
                return to_info(existing)
            row = self._securables.create(session, "schema", parsed, self._caller.name, comment, properties)
            return to_info(row)

    def list(self, catalog: str) -> list[SecurableInfo]:
        """Schemas of `catalog` the caller can see."""
        parsed = Name.parse(catalog, 1)
        return self._access.list_visible(self._caller, "schemas.list", "catalog", parsed, "schema")
