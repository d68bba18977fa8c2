"""How the CLI prints: rich tables for people, `--json` for programs, errors on stderr."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table (for scripts).")]


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, pa.Schema):
        return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def to_plain(value: Any) -> Any:
    """Dataclasses, datetimes and Arrow schemas as JSON-ready values."""
    return json.loads(json.dumps(value, default=_default))


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_plain(value), indent=2) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, default=_default)
    return str(value)


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    """A rich table of `rows` showing `columns`, or a friendly line when there are none."""
    if not rows:
        console.print(f"[dim]No {title or 'rows'}.[/dim]")
        return
    table = Table(title=title, title_justify="left", header_style="bold")
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    for index, column in enumerate(columns):
        # Short values (versions, names, counts) stay on one line; long ones wrap.
        widest = max((len(line) for r in cells for line in r[index].splitlines()), default=0)
        table.add_column(column, no_wrap=widest <= 20 or column.endswith("id"))
    for row_cells in cells:
        table.add_row(*row_cells)
    console.print(table)


def _fields(value: Any) -> dict[str, Any]:
    """A record's fields, keeping datetimes as datetimes so tables show them readably."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return dict(to_plain(value))


def emit(value: Any, as_json: bool, columns: Sequence[str], title: str | None = None) -> None:
    """Print a list of records (dataclasses or dicts) as JSON or as a table."""
    if as_json:
        print_json(value)
        return
    rows = [v if isinstance(v, dict) else _fields(v) for v in value]
    print_rows(rows, columns, title)


def print_arrow(table: pa.Table, fmt: str, output: Path | None = None, max_rows: int = 100) -> None:
    """Print a query result as a table, JSON records or CSV; write Parquet to `output`."""
    if fmt == "parquet":
        if output is None:
            raise typer.BadParameter("Parquet output needs --output FILE.")
        import pyarrow.parquet as pq

        pq.write_table(table, output)
        errors.print(f"Wrote {table.num_rows} row(s) to {output}")
        return
    if fmt == "json":
        text = json.dumps(table.to_pylist(), default=_default, indent=2) + "\n"
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink)
        text = sink.getvalue().to_pybytes().decode()
    else:
        shown = table.slice(0, max_rows)
        grid = Table(header_style="bold")
        for field in table.schema:
            grid.add_column(f"{field.name}\n[dim]{field.type}[/dim]")
        for row in shown.to_pylist():
            grid.add_row(*(_cell(v) for v in row.values()))
        console.print(grid)
        more = f" (showing {max_rows}; use --max-rows or --format csv)" if table.num_rows > max_rows else ""
        console.print(f"[dim]{table.num_rows} row(s){more}[/dim]")
        return
    if output is not None:
        output.write_text(text)
        errors.print(f"Wrote {table.num_rows} row(s) to {output}")
    else:
        sys.stdout.write(text)


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on stderr for work without a known length (hidden when not a terminal)."""
    if not errors.is_terminal:
        yield
        return
    with errors.status(message):
        yield


def ok(message: str) -> None:
    console.print(f"[green]✓[/green] {message}")
