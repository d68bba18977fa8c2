"""The `lakestack` entry point: global options, sub-commands, and errors mapped to exit codes."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from lakestack.cli import deployment as deployment_commands
from lakestack.cli import features, governance, jobs, models, namespaces, tables
from lakestack.cli import lineage as lineage_command
from lakestack.cli import scheduler as scheduler_command
from lakestack.cli import sql as sql_command
from lakestack.cli import workspace as workspace_command
from lakestack.cli.context import STATE
from lakestack.cli.output import errors
from lakestack.errors import LakestackError

EPILOG = (
    "Exit codes: 0 ok, 1 unexpected error, 2 bad input (name, option, file, schema), 3 not found, "
    "4 permission denied or bad token, 5 already exists or conflict, 6 data-quality expectation failed, "
    "7 a service (Redis) unavailable, 8 a job run (jobs run/repair) ended FAILED, TIMEDOUT or CANCELED, "
    "9 a model failed validation (models validate, mode enabled)."
)

app = typer.Typer(
    name="lakestack",
    help="The lakehouse MLOps platform on your machine: governed Delta tables, SQL, grants, "
    "feature tables, MLflow runs and models, multi-task jobs.\n\n"
    "Start with: lakestack -w ./ws workspace init",
    epilog=EPILOG,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main_options(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace", "-w", envvar="LAKESTACK_HOME", help="Workspace folder (default ./.lakestack)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(envvar="LAKESTACK_TOKEN", help="Act as the owner of this token.", show_default=False),
    ] = None,
    as_principal: Annotated[
        str | None, typer.Option("--as", help="Act as this principal (admins only; others use a token).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    STATE.workspace_path = workspace
    STATE.token = token
    STATE.principal = as_principal
    STATE.debug = debug


app.add_typer(workspace_command.app, name="workspace")
app.add_typer(namespaces.catalogs, name="catalogs")
app.add_typer(namespaces.schemas, name="schemas")
app.add_typer(tables.app, name="tables")
app.add_typer(features.app, name="features")
app.command("sql")(sql_command.sql)
app.add_typer(governance.grants, name="grants")
app.add_typer(governance.principals, name="principals")
app.add_typer(governance.tokens, name="tokens")
app.add_typer(governance.audit, name="audit")
deployment_commands.register(models.models)
app.add_typer(models.models, name="models")
app.add_typer(models.experiments, name="experiments")
app.add_typer(models.runs, name="runs")
app.command("lineage")(lineage_command.lineage)
app.add_typer(jobs.app, name="jobs")
app.command("scheduler")(scheduler_command.scheduler)


def main() -> None:
    """Run the CLI; lakestack errors become one red line and a meaningful exit code."""
    try:
        app()
    except LakestackError as exc:
        if STATE.debug:
            traceback.print_exc()
        errors.print(f"[red]Error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        errors.print("Interrupted.")
        sys.exit(130)
    except Exception as exc:  # a bug of ours: one line by default, the traceback with --debug
        if STATE.debug:
            traceback.print_exc()
        else:
            errors.print(
                f"[red]Unexpected error:[/red] {type(exc).__name__}: {exc} (re-run with --debug for details)"
            )
        sys.exit(1)


if __name__ == "__main__":
    main()
