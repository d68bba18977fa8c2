"""`lakestack sql`: query workspace tables with DuckDB SQL."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lakestack.cli.context import workspace
from lakestack.cli.output import JsonFlag, print_arrow, working

FORMATS = ("table", "json", "csv", "parquet")


def sql(
    query: Annotated[
        str,
        typer.Argument(
            help='One SELECT over catalog.schema.table names, e.g. "SELECT count(*) FROM dev.raw.trips".'
        ),
    ],
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table, json, csv or parquet.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the result to this file.")
    ] = None,
    max_rows: Annotated[int, typer.Option(help="Rows to show in table format.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Run one SQL query over workspace tables; you need SELECT on every table it reads."""
    fmt = "json" if as_json else output_format
    if fmt not in FORMATS:
        raise typer.BadParameter(f"Unknown format {fmt!r}: use {', '.join(FORMATS)}.")
    with working("Running query"):
        result = workspace().sql(query)
    print_arrow(result, fmt, output, max_rows)
