"""The grants check: every SDK call asks here first, and every answer is written to the audit log.

Rules (as in Unity Catalog):
- admins may do anything; owners have every privilege on what they own and everything below it;
- a privilege granted on a catalog or schema applies to every object below it;
- reaching an object also needs USE_CATALOG on its catalog and USE_SCHEMA on its schema;
- ALL_PRIVILEGES stands for every privilege; granting needs MANAGE (or ownership);
- jobs have no parent; their privileges are ordered as in Databricks: CAN_VIEW < CAN_MANAGE_RUN
  < MANAGE, each implied by the ones after it (`privileges.IMPLIED_BY`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import AuditEvent, Grant, Principal, Securable
from lakestack.catalog.names import Name
from lakestack.catalog.principals import Caller, principal_row
from lakestack.catalog.privileges import APPLICABLE, IMPLIED_BY, USAGE, Privilege
from lakestack.catalog.securables import SecurableInfo, SecurableStore, create_hint, kind_of, to_info
from lakestack.errors import AdminRequired, InvalidParameter, PrivilegeMissing, SecurableNotFound


@dataclass(frozen=True)
class GrantInfo:
    principal: str
    privilege: str
    securable_kind: str
    securable_name: str
    inherited_from: str | None
    granted_by: str


@dataclass(frozen=True)
class AuditRecord:
    id: int
    ts: datetime
    principal: str
    action: str
    securable_kind: str | None
    securable_name: str | None
    privilege: str | None
    allowed: bool
    detail: dict[str, Any] | None


class AccessControl:
    def __init__(self, metastore: Metastore, securables: SecurableStore) -> None:
        self._metastore = metastore
        self._securables = securables

    # --- checking ------------------------------------------------------------------------

    def _chain(self, session: Session, row: Securable) -> list[Securable]:
        """`row` and its ancestors, catalog first."""
        chain = [row]
        while chain[0].parent_id is not None:
            parent = session.get(Securable, chain[0].parent_id)
            assert parent is not None
            chain.insert(0, parent)
        return chain

    def _holds(self, session: Session, caller: Caller, chain: list[Securable], privilege: Privilege) -> bool:
        if caller.is_admin or any(s.owner in caller.identities for s in chain):
            return True
        stmt = (
            select(Grant.privilege)
            .join(Principal, Principal.id == Grant.principal_id)
            .where(Grant.securable_id.in_([s.id for s in chain]), Principal.name.in_(caller.identities))
        )
        held = set(session.scalars(stmt))
        enough = {privilege, Privilege.ALL_PRIVILEGES, *IMPLIED_BY.get(privilege, ())}
        return any(p.value in held for p in enough)

    def check(
        self,
        session: Session,
        caller: Caller,
        action: str,
        kind: str,
        name: Name,
        privilege: Privilege,
        detail: dict[str, Any] | None = None,
    ) -> Securable:
        """Require `privilege` on the securable (plus usage of its parents); audit the answer.

        Parents are checked top-down, so a caller who may not use a schema learns nothing about
        what is inside it. Returns the securable row.
        """
        rows: list[Securable] = []
        path = self._securables.find_path(session, name, kind)
        for level, row in zip([*name.ancestors(), name], path, strict=True):
            level_kind = kind_of(level, kind)
            if row is None:
                self.record(caller.name, action, kind, str(name), privilege.value, False, detail)
                # Suggest only names the caller could see anyway: a typo must not reveal a table.
                parent = rows[-1] if rows else None
                visible = [
                    r.full_name
                    for r in self._securables.children(session, parent, level_kind)
                    if self.can_see(session, caller, r)
                ]
                raise SecurableNotFound(level_kind, str(level), visible, hint=create_hint(level_kind, level))
            rows.append(row)
            needed = privilege if level == name else USAGE[level_kind]
            if not self._holds(session, caller, rows, needed):
                self.record(caller.name, action, level_kind, str(level), needed.value, False, detail)
                raise PrivilegeMissing(caller.name, needed.value, level_kind, str(level))
        # An allowed call is recorded in the caller's transaction (one commit, not two).
        self.record(caller.name, action, kind, str(name), privilege.value, True, detail, session)
        return rows[-1]

    def exists(self, session: Session, caller: Caller, action: str, kind: str, name: Name) -> bool:
        """Whether a securable exists; answered (and audited) only for callers who may use its parent."""
        if len(name.parts) == 1:
            row = self._securables.find(session, kind, name)
            visible = row is not None and self.can_see(session, caller, row)
            self.record(caller.name, action, kind, str(name), None, True)
            return visible
        parent_kind = kind_of(name.parent)
        try:
            self.check(
                session, caller, action, parent_kind, name.parent, USAGE[parent_kind], {kind: str(name)}
            )
        except SecurableNotFound:
            return False
        return self._securables.find(session, kind, name) is not None

    def list_visible(
        self, caller: Caller, action: str, parent_kind: str, parent: Name, kind: str
    ) -> list[SecurableInfo]:
        """The `kind` children of `parent` the caller can see; listing needs usage of the parent."""
        with self._metastore.session() as session:
            row = self.check(session, caller, action, parent_kind, parent, USAGE[parent_kind])
            rows = self._securables.children(session, row, kind)
            return [to_info(r) for r in rows if self.can_see(session, caller, r)]

    def require_admin(self, caller: Caller, action: str, what: str, target: str | None = None) -> None:
        """Allow (and audit) an admin-only action; `what` says it in words for the error."""
        self.record(caller.name, action, None, target, "ADMIN", caller.is_admin)
        if not caller.is_admin:
            raise AdminRequired(caller.name, what)

    def can(self, session: Session, caller: Caller, row: Securable, privilege: Privilege) -> bool:
        """Whether `caller` holds `privilege` on `row` (no audit: used to filter listings)."""
        return self._holds(session, caller, self._chain(session, row), privilege)

    def can_see(self, session: Session, caller: Caller, row: Securable) -> bool:
        """Listings show an object when the caller holds a privilege that reaches it.

        That is any grant on the object or below it, or one inherited from a parent, except
        that using a parent (USE_CATALOG, USE_SCHEMA on the catalog for a table) reveals nothing.
        """
        if caller.is_admin:
            return True
        chain = self._chain(session, row)
        if any(s.owner in caller.identities for s in chain):
            return True
        own = [row.id] + [d.id for d in self._securables.descendants(session, row)]
        usage_only = {USAGE[s.kind].value for s in chain[:-1]} - {
            u.value for k, u in USAGE.items() if k == row.kind
        }
        held = session.execute(
            select(Grant.securable_id, Grant.privilege)
            .join(Principal, Principal.id == Grant.principal_id)
            .where(
                Grant.securable_id.in_(own + [s.id for s in chain[:-1]]),
                Principal.name.in_(caller.identities),
            )
        )
        return any(sid in own or privilege not in usage_only for sid, privilege in held)

    # --- granting ------------------------------------------------------------------------

    def _applicable(self, kind: str, privilege: Privilege) -> None:
        if privilege not in APPLICABLE.get(kind, set()):
            allowed = ", ".join(sorted(p.value for p in APPLICABLE.get(kind, set())))
            raise InvalidParameter(
                f"{privilege.value} does not apply to a {kind}. On a {kind} use: {allowed}."
            )

    def _direct_grant(
        self,
        session: Session,
        caller: Caller,
        action: str,
        kind: str,
        name: Name,
        principal: str,
        privilege: Privilege,
    ) -> tuple[Securable, Principal, Grant | None]:
        """Check MANAGE for a grant change; return the securable, the grantee and the existing grant."""
        detail = {"grantee": principal, "privilege": privilege.value}
        row = self.check(session, caller, action, kind, name, Privilege.MANAGE, detail)
        grantee = principal_row(session, principal)
        existing = session.scalar(
            select(Grant).where(
                Grant.securable_id == row.id,
                Grant.principal_id == grantee.id,
                Grant.privilege == privilege.value,
            )
        )
        return row, grantee, existing

    def grant(self, caller: Caller, kind: str, name: Name, principal: str, privilege: Privilege) -> None:
        self._applicable(kind, privilege)
        with self._metastore.session() as session:
            row, grantee, existing = self._direct_grant(
                session, caller, "grants.grant", kind, name, principal, privilege
            )
            if existing is None:
                session.add(
                    Grant(
                        securable_id=row.id,
                        principal_id=grantee.id,
                        privilege=privilege.value,
                        granted_by=caller.name,
                    )
                )

    def revoke(self, caller: Caller, kind: str, name: Name, principal: str, privilege: Privilege) -> bool:
        """Remove a direct grant; returns whether there was one."""
        with self._metastore.session() as session:
            _, _, existing = self._direct_grant(
                session, caller, "grants.revoke", kind, name, principal, privilege
            )
            if existing is not None:
                session.delete(existing)
            return existing is not None

    def show(self, caller: Caller, kind: str, name: Name, principal: str | None = None) -> list[GrantInfo]:
        """Grants on the securable, including those inherited from its catalog and schema."""
        with self._metastore.session() as session:
            row = self.check(session, caller, "grants.show", kind, name, _usage_or_select(kind))
            chain = self._chain(session, row)
            stmt = (
                select(Grant, Principal.name, Securable)
                .join(Principal, Principal.id == Grant.principal_id)
                .join(Securable, Securable.id == Grant.securable_id)
                .where(Grant.securable_id.in_([s.id for s in chain]))
                .order_by(Securable.full_name, Principal.name, Grant.privilege)
            )
            if principal is not None:
                stmt = stmt.where(Principal.name == principal)
            return [
                GrantInfo(
                    who,
                    grant.privilege,
                    kind,
                    str(name),
                    None if on.id == row.id else f"{on.kind} {on.full_name}",
                    grant.granted_by,
                )
                for grant, who, on in session.execute(stmt)
            ]

    # --- audit ---------------------------------------------------------------------------

    def record(
        self,
        principal: str,
        action: str,
        kind: str | None,
        name: str | None,
        privilege: str | None,
        allowed: bool,
        detail: dict[str, Any] | None = None,
        session: Session | None = None,
    ) -> None:
        """Append one audit event: inside `session` when given, else in its own transaction
        (denials use their own, so they are kept when the caller's transaction rolls back)."""
        event = AuditEvent(
            ts=datetime.now(UTC),
            principal=principal,
            action=action,
            securable_kind=kind,
            securable_name=name,
            privilege=privilege,
            allowed=allowed,
            detail=detail,
        )
        if session is not None:
            session.add(event)
            return
        with self._metastore.session() as own:
            own.add(event)

    def audit(
        self,
        principal: str | None = None,
        action: str | None = None,
        securable: str | None = None,
        denied_only: bool = False,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Newest audit events first, filtered."""
        with self._metastore.session() as session:
            stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
            if principal:
                stmt = stmt.where(AuditEvent.principal == principal)
            if action:
                stmt = stmt.where(AuditEvent.action.startswith(action))
            if securable:
                stmt = stmt.where(AuditEvent.securable_name == securable)
            if denied_only:
                stmt = stmt.where(AuditEvent.allowed.is_(False))
            if since is not None:
                stmt = stmt.where(AuditEvent.ts >= since)
            return [
                AuditRecord(
                    e.id,
                    e.ts,
                    e.principal,
                    e.action,
                    e.securable_kind,
                    e.securable_name,
                    e.privilege,
                    e.allowed,
                    e.detail,
                )
                for e in session.scalars(stmt)
            ]


def _usage_or_select(kind: str) -> Privilege:
    """What showing the grants on a securable needs: using it, reading it, or seeing a job."""
    if kind == "job":
        return Privilege.CAN_VIEW
    return USAGE.get(kind, Privilege.SELECT)
