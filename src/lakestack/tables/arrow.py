"""Turning what users hand us (pandas, polars, Arrow, files) into Arrow that fits a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lakestack.errors import BadInputData, SchemaMismatch

FILE_FORMATS = ("csv", "parquet", "jsonl")


def to_arrow(data: Any) -> pa.Table:
    """Accept a pyarrow Table/RecordBatch, a pandas or polars DataFrame, or a list of dicts."""
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, list):
        table = pa.Table.from_pylist(data)
    elif hasattr(data, "to_arrow") and type(data).__module__.startswith("polars"):
        table = data.to_arrow()
    elif type(data).__module__.startswith("pandas"):
        table = pa.Table.from_pandas(data, preserve_index=False)
    elif hasattr(data, "__arrow_c_stream__"):
        table = pa.table(data)
    else:
        raise BadInputData(
            f"Cannot write a {type(data).__name__}: pass a pandas or polars DataFrame, a pyarrow Table, "
            "or a list of dicts."
        )
    return _delta_friendly(table.replace_schema_metadata(None))


def _delta_friendly(table: pa.Table) -> pa.Table:
    # Delta stores microsecond timestamps and plain strings; normalise before comparing schemas.
    fields = []
    for f in table.schema:
        t = f.type
        if pa.types.is_timestamp(t) and t.unit != "us":
            t = pa.timestamp("us", tz=t.tz)
        elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
            t = pa.string()
        elif pa.types.is_large_binary(t):
            t = pa.binary()
        elif pa.types.is_dictionary(t):
            t = t.value_type
        fields.append(pa.field(f.name, t, f.nullable))
    target = pa.schema(fields)
    # Delta keeps microseconds: sub-microsecond digits are truncated rather than refused.
    return table if target == table.schema else table.cast(target, safe=False)


def conform(table: pa.Table, target: pa.Schema, name: str, evolve: bool) -> tuple[pa.Table, bool]:
    """Fit `table` to the table's schema: reorder, fill missing nullable columns, cast safely.

    Returns the conformed data and whether the schema must evolve (new columns). New columns
    are an error unless `evolve` is set, so a typo never silently becomes a column.
    """
    incoming = {f.name: f for f in table.schema}
    new = [c for c in incoming if target.get_field_index(c) == -1]
    if new and not evolve:
        raise SchemaMismatch(
            f"Data for '{name}' has column(s) {', '.join(new)} that the table does not have. "
            "Pass evolve_schema=True (CLI: --evolve-schema) to add them, or drop them."
        )
    columns, fields = [], []
    for f in target:
        if f.name not in incoming:
            if not f.nullable:
                raise SchemaMismatch(f"Data for '{name}' lacks required column '{f.name}' ({f.type}).")
            columns.append(pa.nulls(table.num_rows, f.type))
        else:
            column = table.column(f.name)
            if column.type != f.type:
                try:
                    column = column.cast(f.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise SchemaMismatch(
                        f"Column '{f.name}' of '{name}' is {f.type} but the data has {column.type}. "
                        f"Cast it to {f.type} first; a column never changes type in place."
                    ) from None
            columns.append(column)
        fields.append(f)
    for column_name in new:
        columns.append(table.column(column_name))
        fields.append(incoming[column_name].with_nullable(True))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields)), bool(new)


def read_file(path: Path, fmt: str | None = None) -> pa.Table:
    """Read a CSV, Parquet or JSON-lines file; a malformed file gives one line naming the problem."""
    if not path.is_file():
        raise BadInputData(f"File '{path}' does not exist.")
    fmt = fmt or {
        ".csv": "csv",
        ".parquet": "parquet",
        ".pq": "parquet",
        ".jsonl": "jsonl",
        ".json": "jsonl",
        ".ndjson": "jsonl",
    }.get(path.suffix.lower())
    if fmt not in FILE_FORMATS:
        raise BadInputData(f"Cannot tell the format of '{path}': pass --format csv|parquet|jsonl.")
    try:
        if fmt == "csv":
            table = pacsv.read_csv(path)
        elif fmt == "parquet":
            table = pq.read_table(path)
        else:
            with path.open() as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
            table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, json.JSONDecodeError, UnicodeDecodeError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise BadInputData(
            f"Cannot read '{path}' as {fmt}: {detail}. Fix the file or pass --format."
        ) from None
    if table.num_columns == 0:
        raise BadInputData(f"'{path}' holds no columns.")
    return to_arrow(table)
