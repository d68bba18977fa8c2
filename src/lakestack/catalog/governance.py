"""`ws.principals`, `ws.tokens`, `ws.grants`, `ws.audit`: who may do what, and who did."""

from __future__ import annotations

import builtins
from datetime import datetime

from lakestack.catalog.access import AccessControl, AuditRecord, GrantInfo
from lakestack.catalog.names import Name
from lakestack.catalog.principals import Caller, NewToken, PrincipalInfo, PrincipalStore, TokenInfo
from lakestack.catalog.privileges import TOP_LEVEL_KINDS, Privilege
from lakestack.errors import InvalidParameter

SECURABLE_LEVELS = {"catalog": 1, "schema": 2, "table": 3, "model": 3, "job": 1}


def parse_securable(kind: str, name: str) -> tuple[str, Name]:
    """Validate a securable kind and name, e.g. ('table', 'prod.churn.features')."""
    kind = kind.lower()
    if kind not in SECURABLE_LEVELS:
        raise InvalidParameter(f"Unknown securable kind {kind!r}: use {', '.join(SECURABLE_LEVELS)}.")
    if kind in TOP_LEVEL_KINDS:
        # A job name is free text (spaces, dashes), validated by the job spec; it is one part.
        if not name or not name.strip():
            raise InvalidParameter(f"Empty {kind} name.")
        return kind, Name((name,))
    return kind, Name.parse(name, SECURABLE_LEVELS[kind])


class _Checked:
    def __init__(self, store: PrincipalStore, access: AccessControl, caller: Caller) -> None:
        self._store = store
        self._access = access
        self._caller = caller

    def _require_admin(self, action: str, target: str | None = None) -> None:
        what = {"audit.list": "read the audit log"}.get(action, "manage principals and their tokens")
        self._access.require_admin(self._caller, action, what, target)


class Principals(_Checked):
    """Users, groups and service principals. Creating and changing them needs a workspace admin."""

    def create(
        self, name: str, kind: str = "user", display_name: str | None = None, is_admin: bool = False
    ) -> PrincipalInfo:
        self._require_admin("principals.create", name)
        return self._store.create(name, kind, display_name, is_admin)

    def _read(self, action: str, target: str | None = None) -> None:
        # Any principal may look people up (to grant to them), but every look-up is audited.
        self._access.record(self._caller.name, action, "principal", target, None, True)

    def list(self) -> list[PrincipalInfo]:
        self._read("principals.list")
        return self._store.list()

    def get(self, name: str) -> PrincipalInfo:
        self._read("principals.get", name)
        return self._store.get(name)

    def add_member(self, group: str, member: str) -> None:
        self._require_admin("principals.add_member", group)
        self._store.add_member(group, member)

    def remove_member(self, group: str, member: str) -> None:
        self._require_admin("principals.remove_member", group)
        self._store.remove_member(group, member)

    def members(self, group: str) -> builtins.list[str]:
        self._read("principals.members", group)
        return self._store.members(group)

    def whoami(self) -> Caller:
        """The acting principal, with its groups and admin flag."""
        return self._caller


class Tokens(_Checked):
    """Personal access tokens. Anyone may manage their own; admins may manage anyone's."""

    def _may_manage(self, action: str, principal: str) -> None:
        if principal != self._caller.name:
            self._require_admin(action, principal)
        else:
            self._access.record(self._caller.name, action, "principal", principal, None, True)

    def create(
        self, comment: str | None = None, lifetime_seconds: int | None = None, principal: str | None = None
    ) -> NewToken:
        """Create a token; its secret is returned once and only its hash is stored."""
        owner = principal or self._caller.name
        if lifetime_seconds is not None and lifetime_seconds <= 0:
            raise InvalidParameter("A token lifetime must be a positive number of seconds.")
        self._may_manage("tokens.create", owner)
        return self._store.create_token(owner, comment, lifetime_seconds)

    def list(self, principal: str | None = None) -> list[TokenInfo]:
        """Your tokens; an admin may list anyone's (principal=None lists all for admins)."""
        if principal is None and not self._caller.is_admin:
            principal = self._caller.name
        if principal is not None:
            self._may_manage("tokens.list", principal)
        return self._store.list_tokens(principal)

    def revoke(self, token_id: str) -> TokenInfo:
        self._may_manage("tokens.revoke", self._store.token_owner(token_id))
        return self._store.revoke_token(token_id)


class Grants(_Checked):
    """Grant, revoke and show privileges on catalogs, schemas and tables."""

    def grant(self, privilege: str | Privilege, kind: str, name: str, principal: str) -> None:
        """Grant `privilege` on the securable to `principal` (needs MANAGE or ownership)."""
        kind, parsed = parse_securable(kind, name)
        self._store.get(principal)
        self._access.grant(self._caller, kind, parsed, principal, Privilege.parse(str(privilege)))

    def revoke(self, privilege: str | Privilege, kind: str, name: str, principal: str) -> bool:
        """Revoke a direct grant; returns False when there was none to revoke."""
        kind, parsed = parse_securable(kind, name)
        return self._access.revoke(self._caller, kind, parsed, principal, Privilege.parse(str(privilege)))

    def show(self, kind: str, name: str, principal: str | None = None) -> list[GrantInfo]:
        """Grants on the securable, direct and inherited from its parents."""
        kind, parsed = parse_securable(kind, name)
        return self._access.show(self._caller, kind, parsed, principal)


class Audit(_Checked):
    """The audit log: every checked call, allowed or denied. Reading it needs a workspace admin."""

    def list(
        self,
        principal: str | None = None,
        action: str | None = None,
        securable: str | None = None,
        denied_only: bool = False,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        self._require_admin("audit.list")
        return self._access.audit(principal, action, securable, denied_only, since, limit)
