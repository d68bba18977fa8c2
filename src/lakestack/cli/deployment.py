"""`lakestack models promote|approve|reject|rollback|deployments|events|copy`: champion changes."""

from __future__ import annotations

from typing import Annotated

import typer

from lakestack.cli.context import workspace
from lakestack.cli.output import JsonFlag, emit, ok, print_json
from lakestack.models.deployment import DeploymentInfo

DEPLOYMENT_COLUMNS = [
    "id",
    "version",
    "previous_version",
    "state",
    "requested_by",
    "requested_at",
    "decided_by",
    "reason",
]


def _said(info: DeploymentInfo, as_json: bool, message: str) -> None:
    print_json(info) if as_json else ok(message)


def promote(
    name: str,
    version: Annotated[int | None, typer.Argument(help="The version; default: the @challenger.")] = None,
    require_approval: Annotated[
        bool, typer.Option("--require-approval", help="Wait for `models approve` by a MANAGE holder.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Promote a version that did not pass validation (needs --reason).")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why; recorded with the deployment.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Make a validated version the champion of model NAME (needs MANAGE).

    Only a version tagged model_validation_status=PASSED is promoted, unless --force with a
    reason. The champion it replaces is remembered for `models rollback`.
    Example: lakestack models promote prod.churn.model --require-approval
    """
    info = workspace().models.promote(
        name, version, require_approval=require_approval, force=force, reason=reason
    )
    if info.state == "AWAITING_APPROVAL":
        message = (
            f"Version {info.version} of {name} awaits approval: "
            f"lakestack models approve {name} {info.version} (or reject it)"
        )
    else:
        before = f"version {info.previous_version}" if info.previous_version else "no champion"
        message = f"{name}@champion -> version {info.version} (was {before})"
    _said(info, as_json, message)


def approve(
    name: str,
    version: int,
    reason: Annotated[str | None, typer.Option(help="Recorded with the approval.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Approve the promotion of VERSION that awaits approval: it becomes champion (needs MANAGE)."""
    info = workspace().models.approve(name, version, reason)
    _said(info, as_json, f"Approved: {name}@champion -> version {info.version} (by {info.decided_by})")


def reject(
    name: str,
    version: int,
    reason: Annotated[str, typer.Option(help="Why it is rejected (required).")],
    as_json: JsonFlag = False,
) -> None:
    """Reject the promotion of VERSION that awaits approval; the champion stays (needs MANAGE)."""
    info = workspace().models.reject(name, version, reason)
    _said(info, as_json, f"Rejected version {info.version} of {name}: {reason}")


def rollback(name: str, as_json: JsonFlag = False) -> None:
    """Move the champion of NAME back to the version it replaced (needs MANAGE)."""
    info = workspace().models.rollback(name)
    _said(
        info,
        as_json,
        f"Rolled back {name}@champion: version {info.version} -> version {info.previous_version}",
    )


def deployments(
    name: str,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Promotion requests of model NAME and what became of them, newest first."""
    emit(workspace().models.deployments(name, limit), as_json, DEPLOYMENT_COLUMNS, f"deployments of {name}")


def events(
    name: str,
    after: Annotated[int, typer.Option(help="Only events with a larger id.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Champion events of model NAME (promoted, rolled_back, approval_requested, rejected)."""
    columns = ["id", "kind", "version", "previous_version", "principal", "created_at"]
    emit(workspace().models.events(name, after), as_json, columns, f"events of {name}")


def copy(source: str, destination: str, as_json: JsonFlag = False) -> None:
    """Copy model version SOURCE (catalog.schema.model/VERSION) into model DESTINATION.

    The copy keeps the artifacts, feature spec and tags (plus copied_from), and lineage links
    the two. Example: lakestack models copy staging.churn.model/3 prod.churn.model
    """
    info = workspace().models.copy(source, destination)
    print_json(info) if as_json else ok(f"Copied {source} -> {info.name}/{info.version}")


def register(models: typer.Typer) -> None:
    """Add these commands to `lakestack models`."""
    for command in (promote, approve, reject, rollback, deployments, events, copy):
        models.command(command.__name__)(command)
