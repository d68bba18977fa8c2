"""Users, groups, service principals, and personal access tokens (stored hashed)."""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import GroupMember, Principal, Token
from lakestack.errors import InvalidParameter, InvalidToken, SecurableExists, SecurableNotFound

KINDS = ("user", "group", "service_principal")
TOKEN_PREFIX = "lsk_"


@dataclass(frozen=True)
class PrincipalInfo:
    name: str
    kind: str
    is_admin: bool
    display_name: str | None
    created_at: datetime


@dataclass(frozen=True)
class Caller:
    """The acting principal of a call: its name, admin flag and every group it belongs to."""

    name: str
    is_admin: bool
    groups: frozenset[str]

    @property
    def identities(self) -> frozenset[str]:
        return self.groups | {self.name}


@dataclass(frozen=True)
class TokenInfo:
    id: str
    principal: str
    comment: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class NewToken:
    """A freshly created token. `secret` is shown once and never stored."""

    info: TokenInfo
    secret: str


def hash_secret(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is safe; there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: Principal) -> PrincipalInfo:
    return PrincipalInfo(row.name, row.kind, row.is_admin, row.display_name, row.created_at)


def principal_row(session: Session, name: str) -> Principal:
    """The principal named `name`, or SecurableNotFound suggesting a near name."""
    row = session.scalar(select(Principal).where(Principal.name == name))
    if row is None:
        names = session.scalars(select(Principal.name)).all()
        raise SecurableNotFound(
            "principal", name, names, hint="Create it with: lakestack principals create NAME"
        )
    return row


class PrincipalStore:
    """Unchecked storage of principals and tokens; callers check privileges first."""

    def __init__(self, metastore: Metastore) -> None:
        self._metastore = metastore

    def create(
        self, name: str, kind: str = "user", display_name: str | None = None, is_admin: bool = False
    ) -> PrincipalInfo:
        validate_principal_name(name)
        if kind not in KINDS:
            raise InvalidParameter(f"Unknown principal kind {kind!r}: use one of {', '.join(KINDS)}.")
        with self._metastore.session() as session:
            if session.scalar(select(Principal).where(Principal.name == name)) is not None:
                raise SecurableExists("principal", name)
            row = Principal(name=name, kind=kind, display_name=display_name, is_admin=is_admin)
            session.add(row)
            session.flush()
            return _info(row)

    def ensure(self, name: str, kind: str = "user", is_admin: bool = False) -> PrincipalInfo:
        """Create the principal unless it exists (used by idempotent init)."""
        with self._metastore.session() as session:
            row = session.scalar(select(Principal).where(Principal.name == name))
            if row is not None:
                return _info(row)
        return self.create(name, kind, is_admin=is_admin)

    def get(self, name: str) -> PrincipalInfo:
        with self._metastore.session() as session:
            return _info(principal_row(session, name))

    def list(self) -> list[PrincipalInfo]:
        with self._metastore.session() as session:
            return [_info(r) for r in session.scalars(select(Principal).order_by(Principal.name))]

    def add_member(self, group: str, member: str) -> None:
        with self._metastore.session() as session:
            group_row, member_row = principal_row(session, group), principal_row(session, member)
            if group_row.kind != "group":
                raise InvalidParameter(f"Principal '{group}' is a {group_row.kind}, not a group.")
            if group in self._groups_of(session, member_row.id, {member}):
                return
            if member in self._groups_of(session, group_row.id, {group}):
                raise InvalidParameter(f"Adding '{member}' to '{group}' would make a membership cycle.")
            session.add(GroupMember(group_id=group_row.id, member_id=member_row.id))

    def remove_member(self, group: str, member: str) -> None:
        with self._metastore.session() as session:
            group_row, member_row = principal_row(session, group), principal_row(session, member)
            link = session.get(GroupMember, (group_row.id, member_row.id))
            if link is not None:
                session.delete(link)

    def members(self, group: str) -> builtins.list[str]:
        with self._metastore.session() as session:
            group_row = principal_row(session, group)
            stmt = (
                select(Principal.name)
                .join(GroupMember, GroupMember.member_id == Principal.id)
                .where(GroupMember.group_id == group_row.id)
                .order_by(Principal.name)
            )
            return list(session.scalars(stmt))

    def _groups_of(self, session: Session, principal_id: int, seen: set[str]) -> set[str]:
        groups: set[str] = set()
        frontier = [principal_id]
        visited = {principal_id}
        while frontier:
            stmt = (
                select(Principal.id, Principal.name)
                .join(GroupMember, GroupMember.group_id == Principal.id)
                .where(GroupMember.member_id.in_(frontier))
            )
            frontier = []
            for gid, gname in session.execute(stmt):
                if gid not in visited:
                    visited.add(gid)
                    groups.add(gname)
                    frontier.append(gid)
        return groups - seen

    def caller(self, name: str) -> Caller:
        """Resolve a principal with all its (transitive) groups."""
        with self._metastore.session() as session:
            row = principal_row(session, name)
            groups = frozenset(self._groups_of(session, row.id, set()))
            is_admin = row.is_admin or any(
                session.scalars(select(Principal.is_admin).where(Principal.name.in_(groups)))
            )
            return Caller(row.name, is_admin, groups)

    # --- tokens --------------------------------------------------------------------------

    def create_token(
        self, principal: str, comment: str | None = None, lifetime_seconds: int | None = None
    ) -> NewToken:
        token_id = secrets.token_hex(8)
        secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=lifetime_seconds) if lifetime_seconds else None
        with self._metastore.session() as session:
            row = principal_row(session, principal)
            session.add(
                Token(
                    id=token_id,
                    principal_id=row.id,
                    token_hash=hash_secret(secret),
                    comment=comment,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return NewToken(TokenInfo(token_id, principal, comment, now, expires, None, None), secret)

    def _token_info(self, session: Session, token: Token) -> TokenInfo:
        owner = session.get(Principal, token.principal_id)
        assert owner is not None
        return TokenInfo(
            token.id,
            owner.name,
            token.comment,
            token.created_at,
            token.expires_at,
            token.revoked_at,
            token.last_used_at,
        )

    def token_owner(self, token_id: str) -> str:
        with self._metastore.session() as session:
            token = session.get(Token, token_id)
            if token is None:
                raise SecurableNotFound("token", token_id, hint="List tokens with: lakestack tokens ls")
            return self._token_info(session, token).principal

    def list_tokens(self, principal: str | None = None) -> builtins.list[TokenInfo]:
        with self._metastore.session() as session:
            stmt = select(Token).order_by(Token.created_at)
            if principal is not None:
                stmt = stmt.where(Token.principal_id == principal_row(session, principal).id)
            return [self._token_info(session, t) for t in session.scalars(stmt)]

    def revoke_token(self, token_id: str) -> TokenInfo:
        with self._metastore.session() as session:
            token = session.get(Token, token_id)
            if token is None:
                raise SecurableNotFound("token", token_id, hint="List tokens with: lakestack tokens ls")
            if token.revoked_at is None:
                token.revoked_at = datetime.now(UTC)
            return self._token_info(session, token)

    def authenticate(self, secret: str) -> str:
        """Return the principal a token belongs to, or raise InvalidToken (never echoing it)."""
        with self._metastore.session() as session:
            token = session.scalar(select(Token).where(Token.token_hash == hash_secret(secret)))
            now = datetime.now(UTC)
            if token is None:
                raise InvalidToken("Invalid token. Create one with: lakestack tokens create")
            if token.revoked_at is not None:
                raise InvalidToken(
                    f"Token {token.id} was revoked. Create a new one with: lakestack tokens create"
                )
            expires = token.expires_at
            if expires is not None and expires <= now:
                raise InvalidToken(
                    f"Token {token.id} expired. Create a new one with: lakestack tokens create"
                )
            token.last_used_at = now
            owner = session.get(Principal, token.principal_id)
            assert owner is not None
            return owner.name


def validate_principal_name(name: str) -> str:
    """Principal names are user names or emails: no spaces, quotes, slashes or control characters."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.@+\-]{0,199}", name):
        raise InvalidParameter(
            f"Invalid principal name {name!r}: use letters, digits and _ . @ + - (e.g. 'alice@example.com')."
        )
    return name
