"""`lakestack tables`: list, inspect, load, time-travel and maintain Delta tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lakestack.cli.context import split_csv, workspace
from lakestack.cli.output import JsonFlag, console, emit, ok, print_arrow, print_json, working
from lakestack.tables.delta import HistoryEntry

app = typer.Typer(
    help="Delta tables named catalog.schema.table: inspect, load, time-travel, maintain.",
    no_args_is_help=True,
)

Version = Annotated[
    int | None, typer.Option("--version", "-v", help="Read this table version (time travel).")
]
Timestamp = Annotated[
    str | None,
    typer.Option("--timestamp", help="Read the version current at this ISO time, e.g. 2026-01-31T12:00:00Z."),
]


@app.command("ls")
def ls(schema: str, as_json: JsonFlag = False) -> None:
    """List the tables of SCHEMA (catalog.schema) you can see."""
    emit(
        workspace().tables.list(schema),
        as_json,
        ["full_name", "owner", "comment", "created_at"],
        f"tables in {schema}",
    )


@app.command()
def show(name: str, as_json: JsonFlag = False) -> None:
    """Describe a table: owner, location, version, schema, expectations."""
    info = workspace().tables.get(name)
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{info.name}[/bold]  version {info.version}  owner {info.owner}")
    console.print(f"  location:   {info.location}")
    if info.comment:
        console.print(f"  comment:    {info.comment}")
    if info.partition_columns:
        console.print(f"  partitions: {', '.join(info.partition_columns)}")
    for key, value in info.properties.items():
        console.print(f"  property:   {key} = {value}")
    emit(
        [{"column": f.name, "type": str(f.type), "nullable": f.nullable} for f in info.schema],
        False,
        ["column", "type", "nullable"],
        "columns",
    )
    if info.expectations:
        emit(info.expectations, False, ["name", "condition", "action"], "expectations on every write")


@app.command()
def head(
    name: str,
    rows: Annotated[int, typer.Option("--rows", "-n", help="How many rows.")] = 10,
    version: Version = None,
    timestamp: Timestamp = None,
    as_json: JsonFlag = False,
) -> None:
    """Show the first rows of a table, now or at an older version."""
    table = workspace().tables.read(name, version=version, timestamp=timestamp, limit=rows)
    print_arrow(table, "json" if as_json else "table", max_rows=rows)


def _history_row(entry: HistoryEntry) -> dict[str, Any]:
    verbs = {"warn": "warned", "drop": "dropped", "fail": "failed"}
    checks = "\n".join(f"{e['name']}: {e['failed']} {verbs[e['action']]}" for e in entry.expectations)
    m = entry.metrics
    if "num_target_rows_inserted" in m:  # a merge: what changed, not how many rows were rewritten
        rows: Any = "+{} ~{} -{}".format(
            m["num_target_rows_inserted"], m["num_target_rows_updated"], m["num_target_rows_deleted"]
        )
    else:
        rows = m.get("num_added_rows")
    return {
        "version": entry.version,
        "timestamp": entry.timestamp,
        "operation": entry.operation,
        "principal": entry.principal,
        "rows": rows,
        "expectations": checks or None,
    }


@app.command()
def history(
    name: str,
    limit: Annotated[int | None, typer.Option(help="Only the newest N versions.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Versions of a table, newest first: operation, who, rows, expectation results."""
    entries = workspace().tables.history(name, limit)
    if as_json:
        print_json(entries)
        return
    emit(
        [_history_row(e) for e in entries],
        False,
        ["version", "timestamp", "operation", "principal", "rows", "expectations"],
        f"history of {name}",
    )


@app.command("import")
def import_(
    name: str,
    file: Annotated[Path, typer.Argument(help="A .csv, .parquet or .jsonl file.")],
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv, parquet or jsonl (default: from the suffix).")
    ] = None,
    mode: Annotated[str, typer.Option(help="append or overwrite, when the table exists.")] = "append",
    partition_by: Annotated[list[str] | None, typer.Option(help="Partition columns for a new table.")] = None,
    evolve_schema: Annotated[
        bool, typer.Option("--evolve-schema", help="Add new columns to the table.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Load a file into table NAME, creating the table (and its schema) if they do not exist."""
    ws = workspace()
    schema = name.rsplit(".", 1)[0]
    if name.count(".") == 2 and not ws.schemas.exists(schema):
        ws.schemas.create(schema)
        if not as_json:
            ok(f"Created schema {schema}")
    with working(f"Importing {file} into {name}"):
        result = ws.tables.import_file(name, file, file_format, mode, split_csv(partition_by), evolve_schema)  # type: ignore[arg-type]
    if as_json:
        print_json(result)
        return
    ok(f"Wrote {result.rows_written} row(s) to {result.table}, now at version {result.version}")


@app.command()
def restore(
    name: str, version: Version = None, timestamp: Timestamp = None, as_json: JsonFlag = False
) -> None:
    """Make an older version current again (recorded as a new version)."""
    new_version = workspace().tables.restore(name, version=version, timestamp=timestamp)
    if as_json:
        print_json(
            {
                "table": name,
                "version": new_version,
                "restored_from": version if version is not None else timestamp,
            }
        )
        return
    ok(f"Restored {name} to {version if version is not None else timestamp}; now at version {new_version}")


@app.command()
def optimize(
    name: str,
    zorder_by: Annotated[
        list[str] | None, typer.Option(help="Z-order by these columns (comma-separated or repeated).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Compact small files, optionally Z-ordering by columns you filter on."""
    with working(f"Optimizing {name}"):
        metrics = workspace().tables.optimize(name, split_csv(zorder_by) or None)
    if as_json:
        print_json(metrics)
        return
    removed, added = metrics.get("numFilesRemoved", 0), metrics.get("numFilesAdded", 0)
    ok(f"Optimized {name}: {removed} file(s) compacted into {added}")


@app.command()
def vacuum(
    name: str,
    retention_hours: Annotated[
        int | None, typer.Option(help="Keep files needed by versions this recent (default 168).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")] = False,
    enforce_retention: Annotated[
        bool, typer.Option(help="Refuse a retention below the table's minimum.")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Delete data files that no version within the retention needs."""
    with working(f"Vacuuming {name}"):
        files = workspace().tables.vacuum(name, retention_hours, dry_run, enforce_retention)
    if as_json:
        print_json({"table": name, "dry_run": dry_run, "files": files})
        return
    ok(f"{'Would delete' if dry_run else 'Deleted'} {len(files)} file(s) from {name}")
    for path in files[:20]:
        console.print(f"  {path}")


@app.command()
def drop(name: str, as_json: JsonFlag = False) -> None:
    """Drop a table and delete its data (needs MANAGE or ownership)."""
    info = workspace().tables.drop(name)
    print_json(info) if as_json else ok(f"Dropped table {info.full_name}")
