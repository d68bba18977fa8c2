"""`lakestack workspace`: create, upgrade and describe a workspace."""

from __future__ import annotations

from typing import Annotated

import typer

from lakestack.cli.context import STATE
from lakestack.cli.output import JsonFlag, console, ok, print_json
from lakestack.errors import InvalidParameter
from lakestack.workspace import Workspace

app = typer.Typer(
    help="Create, upgrade and describe a workspace (folder with workspace.toml).", no_args_is_help=True
)


def _options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidParameter(f"--storage-option takes KEY=VALUE, got {pair!r}.")
        options[key] = value
    return options


@app.command()
def init(
    storage_root: Annotated[
        str | None,
        typer.Option(help="Where tables live: a folder, or s3://, abfss://, gs:// (default: <ws>/tables)."),
    ] = None,
    storage_option: Annotated[
        list[str] | None,
        typer.Option(help="KEY=VALUE passed to deltalake (credentials, endpoint). Repeatable."),
    ] = None,
    metastore_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL, e.g. postgresql://user@host/db (default: SQLite in the folder)."),
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (default: SQLite in the folder).")
    ] = None,
    admin: Annotated[str, typer.Option(help="Name of the workspace admin principal.")] = "admin",
    as_json: JsonFlag = False,
) -> None:
    """Create the workspace, or upgrade it in place (safe to run again).

    Creates catalogs dev, staging, prod and test, and the admin principal.
    """
    ws = Workspace.init(
        STATE.path,
        storage_root=storage_root,
        storage_options=_options(storage_option or []),
        metastore_url=metastore_url,
        tracking_uri=tracking_uri,
        admin=admin,
    )
    info = ws.info()
    if as_json:
        print_json(info)
        return
    ok(f"Workspace '{info['name']}' ready at {info['folder']}")
    console.print(f"  catalogs: {', '.join(info['catalogs'])}")
    console.print(f"  tables:   {info['storage_root']}")
    console.print(f"Next: lakestack -w {STATE.path} tables import dev.raw.NAME FILE.csv")


@app.command()
def info(as_json: JsonFlag = False) -> None:
    """Show where the workspace keeps tables, metastore and MLflow data, and who you act as."""
    data = STATE.open().info()
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        console.print(f"[bold]{key:>20}[/bold]  {', '.join(value) if isinstance(value, list) else value}")


@app.command()
def upgrade(as_json: JsonFlag = False) -> None:
    """Migrate the metastore of an existing workspace to this version of lakestack."""
    revision = Workspace.upgrade(STATE.path)
    if as_json:
        print_json({"revision": revision})
        return
    ok(f"Metastore at revision {revision}")
