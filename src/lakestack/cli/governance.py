"""`lakestack grants`, `principals`, `tokens` and `audit`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from lakestack.catalog.privileges import Privilege
from lakestack.cli.context import workspace
from lakestack.cli.output import JsonFlag, console, emit, errors, ok, print_json

grants = typer.Typer(
    help="Privileges on catalogs, schemas, tables, models and jobs; granted on a parent, they apply to "
    "everything inside.",
    no_args_is_help=True,
)
principals = typer.Typer(help="Users, groups and service principals.", no_args_is_help=True)
tokens = typer.Typer(
    help="Personal access tokens (only a hash is stored; the secret is shown once).", no_args_is_help=True
)
audit = typer.Typer(help="The audit log: every checked call, allowed or denied.", no_args_is_help=True)

PrivilegeArg = Annotated[str, typer.Argument(help=", ".join(p.value for p in Privilege) + ".")]
Kind = Annotated[str, typer.Argument(help="catalog, schema, table, model or job.")]
Securable = Annotated[
    str, typer.Argument(help="Its name: dev, dev.churn, dev.churn.features, or a job's name.")
]


@grants.command("grant")
def grant(
    privilege: PrivilegeArg, kind: Kind, name: Securable, principal: str, as_json: JsonFlag = False
) -> None:
    """Grant PRIVILEGE on KIND NAME to PRINCIPAL, e.g. `grants grant SELECT schema prod.churn analysts`."""
    workspace().grants.grant(privilege, kind, name, principal)
    print_json({"granted": privilege.upper(), "on": f"{kind} {name}", "to": principal}) if as_json else ok(
        f"Granted {privilege.upper()} on {kind} {name} to {principal}"
    )


@grants.command("revoke")
def revoke(
    privilege: PrivilegeArg, kind: Kind, name: Securable, principal: str, as_json: JsonFlag = False
) -> None:
    """Revoke a privilege granted directly on KIND NAME."""
    removed = workspace().grants.revoke(privilege, kind, name, principal)
    if as_json:
        print_json({"revoked": removed})
    elif removed:
        ok(f"Revoked {privilege.upper()} on {kind} {name} from {principal}")
    else:
        console.print(
            f"{principal} had no direct {privilege.upper()} grant on {kind} {name}; nothing changed."
        )


@grants.command("show")
def show(
    kind: Kind,
    name: Securable,
    principal: Annotated[str | None, typer.Option(help="Only this principal's grants.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Grants on KIND NAME, including those inherited from its catalog and schema."""
    emit(
        workspace().grants.show(kind, name, principal),
        as_json,
        ["principal", "privilege", "inherited_from", "granted_by"],
        f"grants on {kind} {name}",
    )


@principals.command("ls")
def principals_ls(as_json: JsonFlag = False) -> None:
    """List principals."""
    emit(
        workspace().principals.list(),
        as_json,
        ["name", "kind", "is_admin", "display_name", "created_at"],
        "principals",
    )


@principals.command("create")
def principals_create(
    name: str,
    kind: Annotated[str, typer.Option(help="user, group or service_principal.")] = "user",
    display_name: Annotated[str | None, typer.Option(help="A human-readable name.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Make it a workspace admin.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create a principal (workspace admins only)."""
    info = workspace().principals.create(name, kind, display_name, admin)
    print_json(info) if as_json else ok(f"Created {info.kind} {info.name}")


@principals.command("add-member")
def principals_add_member(group: str, member: str, as_json: JsonFlag = False) -> None:
    """Add MEMBER (a user, service principal or group) to GROUP."""
    workspace().principals.add_member(group, member)
    print_json({"group": group, "member": member}) if as_json else ok(f"Added {member} to {group}")


@principals.command("whoami")
def principals_whoami(as_json: JsonFlag = False) -> None:
    """Who you act as, with your groups."""
    caller = workspace().principals.whoami()
    if as_json:
        print_json(caller)
        return
    groups = ", ".join(sorted(caller.groups)) or "none"
    console.print(f"{caller.name} (admin: {caller.is_admin}; groups: {groups})")


@tokens.command("create")
def tokens_create(
    comment: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    lifetime_seconds: Annotated[
        int | None, typer.Option(help="Expire after this many seconds (default: never).")
    ] = None,
    principal: Annotated[str | None, typer.Option(help="Create it for this principal (admins only).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token. Its secret is printed once: store it now (e.g. in LAKESTACK_TOKEN)."""
    new = workspace().tokens.create(comment, lifetime_seconds, principal)
    if as_json:
        print_json(
            {
                "token_id": new.info.id,
                "principal": new.info.principal,
                "token": new.secret,
                "expires_at": new.info.expires_at,
            }
        )
        return
    ok(f"Created token {new.info.id} for {new.info.principal}")
    errors.print("Store this secret now; it cannot be shown again:")
    typer.echo(new.secret)


@tokens.command("ls")
def tokens_ls(
    principal: Annotated[str | None, typer.Option(help="Whose tokens (admins: anyone's).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List tokens (never their secrets)."""
    emit(
        workspace().tokens.list(principal),
        as_json,
        ["id", "principal", "comment", "created_at", "expires_at", "revoked_at", "last_used_at"],
        "tokens",
    )


@tokens.command("revoke")
def tokens_revoke(token_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a token by its id; it stops working at once."""
    info = workspace().tokens.revoke(token_id)
    print_json(info) if as_json else ok(f"Revoked token {info.id} of {info.principal}")


@audit.command("ls")
def audit_ls(
    principal: Annotated[str | None, typer.Option(help="Only this principal's calls.")] = None,
    action: Annotated[str | None, typer.Option(help="Only actions starting with this, e.g. tables.")] = None,
    securable: Annotated[str | None, typer.Option(help="Only calls on this securable name.")] = None,
    denied: Annotated[bool, typer.Option("--denied", help="Only denied calls.")] = False,
    since: Annotated[datetime | None, typer.Option(help="Only calls since this time.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Show the audit log, newest first (workspace admins only)."""
    records = workspace().audit.list(principal, action, securable, denied, since, limit)
    emit(
        records,
        as_json,
        ["ts", "principal", "action", "securable_kind", "securable_name", "privilege", "allowed"],
        "audit events",
    )
