"""`lakestack catalogs` and `lakestack schemas`."""

from __future__ import annotations

from typing import Annotated

import typer

from lakestack.cli.context import workspace
from lakestack.cli.output import JsonFlag, emit, ok, print_json

COLUMNS = ["full_name", "owner", "comment", "created_at"]
Cascade = Annotated[
    bool, typer.Option("--cascade", help="Also drop everything inside (and delete its data).")
]
Comment = Annotated[str | None, typer.Option(help="What it holds, for the people who browse it.")]

catalogs = typer.Typer(help="Catalogs: one per environment (dev, staging, prod, test).", no_args_is_help=True)
schemas = typer.Typer(help="Schemas: one per project inside a catalog, e.g. dev.churn.", no_args_is_help=True)


@catalogs.command("ls")
def catalogs_ls(as_json: JsonFlag = False) -> None:
    """List the catalogs you can see."""
    emit(workspace().catalogs.list(), as_json, COLUMNS, "catalogs")


@catalogs.command("create")
def catalogs_create(name: str, comment: Comment = None, as_json: JsonFlag = False) -> None:
    """Create a catalog (workspace admins only)."""
    info = workspace().catalogs.create(name, comment=comment)
    print_json(info) if as_json else ok(f"Created catalog {info.full_name}")


@catalogs.command("drop")
def catalogs_drop(name: str, cascade: Cascade = False, as_json: JsonFlag = False) -> None:
    """Drop a catalog (needs MANAGE or ownership)."""
    dropped = workspace().catalogs.drop(name, cascade=cascade)
    print_json(dropped) if as_json else ok(f"Dropped catalog {name} ({len(dropped)} object(s))")


@schemas.command("ls")
def schemas_ls(catalog: str, as_json: JsonFlag = False) -> None:
    """List the schemas of CATALOG you can see."""
    emit(workspace().schemas.list(catalog), as_json, COLUMNS, f"schemas in {catalog}")


@schemas.command("create")
def schemas_create(name: str, comment: Comment = None, as_json: JsonFlag = False) -> None:
    """Create schema NAME (catalog.schema); needs CREATE_SCHEMA on the catalog."""
    info = workspace().schemas.create(name, comment=comment)
    print_json(info) if as_json else ok(f"Created schema {info.full_name}")


@schemas.command("drop")
def schemas_drop(name: str, cascade: Cascade = False, as_json: JsonFlag = False) -> None:
    """Drop a schema (needs MANAGE or ownership)."""
    dropped = workspace().schemas.drop(name, cascade=cascade)
    print_json(dropped) if as_json else ok(f"Dropped schema {name} ({len(dropped)} object(s))")
