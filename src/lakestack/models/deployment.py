"""Deployment: which version of a model is its champion, who decided, and how to undo it.

```python
ws.models.promote("prod.churn.model")                         # @challenger -> @champion
ws.models.promote("prod.churn.model", 7, require_approval=True)   # waits for a MANAGE holder
ws.models.approve("prod.churn.model", 7)                      # or reject(..., reason=...)
ws.models.rollback("prod.churn.model")                        # champion back to the one before
ws.models.copy("staging.churn.model/3", "prod.churn.model")   # promote the artifact, not the code
```

Only a version whose `model_validation_status` tag is PASSED becomes champion (the offline
comparison with the champion is part of validation); `force=True` with a reason overrides it,
and the record says so. Every change takes the model's lock in the metastore and checks that the
champion is still the one the request saw, so of two concurrent promotions exactly one wins; the
other gets ConcurrentPromotion and changes nothing. Each deployment remembers the champion it
replaced, which is what `rollback` returns to. Every change is an event
(`ws.models.events(name, after=id)`): `approval_requested`, `rejected`, `promoted`,
`rolled_back`; endpoints and jobs follow a model by reading them.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lakestack.catalog.metastore import Metastore
from lakestack.catalog.models import ModelDeployment, ModelEvent, Securable
from lakestack.catalog.names import Name
from lakestack.catalog.principals import Caller
from lakestack.catalog.privileges import Privilege
from lakestack.catalog.securables import SecurableStore
from lakestack.errors import Conflict, InvalidParameter, NotFound, SecurableNotFound
from lakestack.lineage.store import NodeRef

if TYPE_CHECKING:
    from lakestack.models.registry import ModelRegistry, ModelVersionInfo

CHAMPION = "champion"
CHALLENGER = "challenger"
VALIDATION_TAG = "model_validation_status"
VALIDATION_MODE_TAG = "model_validation_mode"
COPIED_FROM_TAG = "copied_from"


class PromotionRefused(InvalidParameter):
    code = "PROMOTION_REFUSED"


class ConcurrentPromotion(Conflict):
    code = "CONCURRENT_MODIFICATION"


class NothingToRollBack(NotFound):
    code = "NO_PREVIOUS_CHAMPION"


@dataclass(frozen=True)
class DeploymentInfo:
    """One promotion request and what became of it."""

    id: int
    model_name: str
    version: int
    previous_version: int | None
    state: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEventInfo:
    """A change of a model's champion, or a step towards one."""

    id: int
    model_name: str
    kind: str
    version: int | None
    previous_version: int | None
    principal: str
    created_at: datetime
    detail: dict[str, Any] = field(default_factory=dict)


def _deployment(row: ModelDeployment) -> DeploymentInfo:
    return DeploymentInfo(
        row.id,
        row.model_name,
        row.version,
        row.previous_version,
        row.state,
        row.requested_by,
        row.requested_at,
        row.decided_by,
        row.decided_at,
        row.reason,
        dict(row.detail or {}),
    )


def _event(row: ModelEvent) -> ModelEventInfo:
    return ModelEventInfo(
        row.id,
        row.model_name,
        row.kind,
        row.version,
        row.previous_version,
        row.principal,
        row.created_at,
        dict(row.detail or {}),
    )


class Deployments:
    """Champion changes of registered models, checked (MANAGE on the model) and recorded."""

    def __init__(
        self, registry: ModelRegistry, metastore: Metastore, securables: SecurableStore, caller: Caller
    ) -> None:
        self._registry = registry
        self._metastore = metastore
        self._securables = securables
        self._caller = caller

    # --- promoting ------------------------------------------------------------------------

    def promote(
        self,
        name: str,
        version: int | None = None,
        *,
        require_approval: bool = False,
        force: bool = False,
        reason: str | None = None,
    ) -> DeploymentInfo:
        """Make `version` (default: the @challenger) the champion, or, with `require_approval`,
        ask for it: the request waits AWAITING_APPROVAL until `approve` or `reject`."""
        parsed = Name.parse(name, 3)
        self._registry._check("models.promote", parsed, Privilege.MANAGE, version=version)
        candidate = self._candidate(parsed, version)
        status = candidate.tags.get(VALIDATION_TAG)
        if force and not (reason or "").strip():
            raise InvalidParameter(
                "A forced promotion needs a reason: promote(..., force=True, reason='...')."
            )
        if status == "PASSED" and candidate.tags.get(VALIDATION_MODE_TAG) == "dry_run" and not force:
            raise PromotionRefused(
                f"Version {candidate.version} of model '{parsed}' passed validation in a dry run only, "
                "which reports and decides nothing: validate it with mode enabled."
            )
        if status != "PASSED" and not force:
            raise PromotionRefused(
                f"Version {candidate.version} of model '{parsed}' has {VALIDATION_TAG} "
                f"{status or 'unset'}: only a version that passed validation becomes champion. "
                f"Validate it (lakestack models validate {candidate.uri} ...), or force it with a reason."
            )
        seen = self._champion(parsed)
        if seen == candidate.version:
            raise InvalidParameter(f"Version {candidate.version} is already the champion of '{parsed}'.")
        detail = {"validation_status": status, "forced": force, "expected_champion": seen}
        with self._locked(parsed) as session:
            waiting = self._waiting(session, parsed)
            if waiting is not None:
                raise ConcurrentPromotion(
                    f"Version {waiting.version} of '{parsed}' already awaits approval; approve or "
                    f"reject it first: lakestack models approve {parsed} {waiting.version}"
                )
            row = ModelDeployment(
                model_name=str(parsed),
                version=candidate.version,
                previous_version=seen,
                state="AWAITING_APPROVAL" if require_approval else "DEPLOYED",
                requested_by=self._caller.name,
                reason=reason,
                detail=detail,
            )
            session.add(row)
            session.flush()
            if require_approval:
                self._event(session, parsed, "approval_requested", candidate.version, seen, detail)
            else:
                self._make_champion(session, parsed, row, seen)
            return _deployment(row)

    def approve(self, name: str, version: int, reason: str | None = None) -> DeploymentInfo:
        """Approve the promotion of `version` that awaits approval: it becomes champion now."""
        parsed = Name.parse(name, 3)
        self._registry._check("models.approve", parsed, Privilege.MANAGE, version=version)
        with self._locked(parsed) as session:
            row = self._awaiting(session, parsed, version)
            row.decided_by, row.decided_at = self._caller.name, datetime.now(UTC)
            row.reason = reason or row.reason
            self._make_champion(session, parsed, row, row.previous_version)
            return _deployment(row)

    def reject(self, name: str, version: int, reason: str) -> DeploymentInfo:
        """Reject the promotion of `version` that awaits approval; the champion stays."""
        parsed = Name.parse(name, 3)
        self._registry._check("models.reject", parsed, Privilege.MANAGE, version=version)
        if not reason.strip():
            raise InvalidParameter("Say why the promotion is rejected: --reason '...'.")
        with self._locked(parsed) as session:
            row = self._awaiting(session, parsed, version)
            row.state, row.reason = "REJECTED", reason
            row.decided_by, row.decided_at = self._caller.name, datetime.now(UTC)
            self._event(session, parsed, "rejected", version, row.previous_version, {"reason": reason})
            return _deployment(row)

    def rollback(self, name: str) -> DeploymentInfo:
        """Move the champion back to the version it replaced; returns the undone deployment
        (its `version` left, its `previous_version` is champion again)."""
        parsed = Name.parse(name, 3)
        self._registry._check("models.rollback", parsed, Privilege.MANAGE)
        with self._locked(parsed) as session:
            champion = self._champion(parsed)
            if champion is None:
                raise NothingToRollBack(f"Model '{parsed}' has no champion, so nothing to roll back.")
            row = session.scalars(
                select(ModelDeployment)
                .where(
                    ModelDeployment.model_name == str(parsed),
                    ModelDeployment.state == "DEPLOYED",
                    ModelDeployment.version == champion,
                )
                .order_by(ModelDeployment.id.desc())
                .limit(1)
            ).first()
            if row is None or row.previous_version is None:
                raise NothingToRollBack(
                    f"Model '{parsed}' has no previous champion to roll back to: version {champion} "
                    "was its first. Point the alias by hand if you must: lakestack models alias set "
                    f"{parsed} champion VERSION"
                )
            self._registry.client().set_registered_model_alias(
                str(parsed), CHAMPION, str(row.previous_version)
            )
            row.state = "ROLLED_BACK"
            row.decided_by, row.decided_at = self._caller.name, datetime.now(UTC)
            self._event(session, parsed, "rolled_back", row.previous_version, champion, {})
            return _deployment(row)

    # --- reading ------------------------------------------------------------------------

    def deployments(self, name: str, limit: int = 50) -> builtins.list[DeploymentInfo]:
        """The model's promotion requests, newest first (needs EXECUTE)."""
        parsed = Name.parse(name, 3)
        self._registry._check("models.deployments", parsed, Privilege.EXECUTE)
        with self._metastore.session() as session:
            rows = session.scalars(
                select(ModelDeployment)
                .where(ModelDeployment.model_name == str(parsed))
                .order_by(ModelDeployment.id.desc())
                .limit(limit)
            )
            return [_deployment(row) for row in rows]

    def events(self, name: str, after: int = 0) -> builtins.list[ModelEventInfo]:
        """The model's events with an id above `after`, oldest first (needs EXECUTE)."""
        parsed = Name.parse(name, 3)
        self._registry._check("models.events", parsed, Privilege.EXECUTE)
        with self._metastore.session() as session:
            rows = session.scalars(
                select(ModelEvent)
                .where(ModelEvent.model_name == str(parsed), ModelEvent.id > after)
                .order_by(ModelEvent.id)
            )
            return [
                ModelEventInfo(
                    r.id,
                    r.model_name,
                    r.kind,
                    r.version,
                    r.previous_version,
                    r.principal,
                    r.created_at,
                    r.detail,
                )
                for r in rows
            ]

    # --- copying --------------------------------------------------------------------------

    def copy(self, source: str, destination: str) -> ModelVersionInfo:
        """Register version `source` (`cat.sch.model/3` or a models:/ URI; needs EXECUTE) as a
        new version of `destination` (CREATE_MODEL or MODIFY there), with its artifacts and
        feature spec, its tags plus `copied_from`, and a lineage edge between the two."""
        uri = source if source.startswith("models:/") else f"models:/{source}"
        original = self._registry.resolve(uri, "models.copy")
        tags = {k: v for k, v in original.tags.items() if not k.startswith("model_validation_")}
        tags[COPIED_FROM_TAG] = f"{original.name}/{original.version}"
        copied = self._registry.register(
            original.source, destination, original.description, tags, run_id=original.run_id
        )
        self._registry._lineage.link(
            NodeRef("model", original.name, original.version), NodeRef("model", copied.name, copied.version)
        )
        return copied

    # --- inside -----------------------------------------------------------------------------

    def _candidate(self, parsed: Name, version: int | None) -> ModelVersionInfo:
        if version is not None:
            return self._registry.resolve(f"models:/{parsed}/{int(version)}", "models.promote")
        if CHALLENGER not in self._aliases(parsed):
            raise PromotionRefused(
                f"Model '{parsed}' has no challenger: validate a version (it gets @challenger when it "
                "passes), or name the version to promote."
            )
        return self._registry.resolve(f"models:/{parsed}@{CHALLENGER}", "models.promote")

    def _aliases(self, parsed: Name) -> dict[str, int]:
        """The model's aliases and the versions they point at, straight from the registry."""
        aliases = self._registry.client().get_registered_model(str(parsed)).aliases or {}
        return {alias: int(version) for alias, version in aliases.items()}

    def _champion(self, parsed: Name) -> int | None:
        return self._aliases(parsed).get(CHAMPION)

    @contextmanager
    def _locked(self, parsed: Name) -> Iterator[Session]:
        """A metastore transaction holding the model's lock: champion changes take turns."""
        with self._metastore.session() as session:
            row = self._securables.find(session, "model", parsed)
            if row is None:
                raise SecurableNotFound("model", str(parsed))
            session.execute(update(Securable).where(Securable.id == row.id).values(id=Securable.id))
            yield session

    def _waiting(self, session: Session, parsed: Name) -> ModelDeployment | None:
        """The model's promotion that awaits approval, if any (there is at most one)."""
        stmt = select(ModelDeployment).where(
            ModelDeployment.model_name == str(parsed), ModelDeployment.state == "AWAITING_APPROVAL"
        )
        return session.scalars(stmt.order_by(ModelDeployment.id.desc()).limit(1)).first()

    def _awaiting(self, session: Session, parsed: Name, version: int) -> ModelDeployment:
        row = self._waiting(session, parsed)
        if row is None or row.version != version:
            waiting = f" (version {row.version} does)" if row is not None else ""
            raise NotFound(f"No promotion of version {version} of '{parsed}' awaits approval{waiting}.")
        return row

    def _make_champion(
        self, session: Session, parsed: Name, row: ModelDeployment, expected: int | None
    ) -> None:
        """Point @champion at the row's version if the champion is still `expected`."""
        aliases = self._aliases(parsed)
        current = aliases.get(CHAMPION)
        if current != expected:
            raise ConcurrentPromotion(
                f"The champion of '{parsed}' changed from {_v(expected)} to {_v(current)} while version "
                f"{row.version} was being promoted; nothing changed. Validate it against the new "
                "champion and promote again."
            )
        client = self._registry.client()
        client.set_registered_model_alias(str(parsed), CHAMPION, str(row.version))
        if aliases.get(CHALLENGER) == row.version:
            client.delete_registered_model_alias(str(parsed), CHALLENGER)  # it won: no longer challenging
        row.state = "DEPLOYED"
        row.previous_version = current
        self._event(session, parsed, "promoted", row.version, current, {"deployment_id": row.id})

    def _event(
        self,
        session: Session,
        parsed: Name,
        kind: str,
        version: int | None,
        previous: int | None,
        detail: dict[str, Any],
    ) -> None:
        session.add(
            ModelEvent(
                model_name=str(parsed),
                kind=kind,
                version=version,
                previous_version=previous,
                principal=self._caller.name,
                detail=detail,
            )
        )


def _v(version: int | None) -> str:
    return "none" if version is None else f"version {version}"
