"""SQL over workspace tables: DuckDB reading Delta tables by their three-level names.

Each query gets a fresh in-memory DuckDB. The tables it names are found with DuckDB's own
parser, checked against the grants (SELECT), and mounted as views over Arrow datasets, so
filters and projections push down into the Delta scan. The connection is then locked: the
query can read no file, attach nothing and load no extension, only the tables it was granted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from lakestack.catalog.names import Name
from lakestack.errors import InvalidName, InvalidQuery
from lakestack.tables.sandbox import lock_down, sandboxed_connection

Resolver = Callable[[Name], pads.Dataset]


def _base_tables(node: Any, found: set[tuple[str, ...]], ctes: set[str]) -> None:
    """Collect every BASE_TABLE reference (and every CTE name) in a serialized parse tree."""
    if isinstance(node, dict):
        if node.get("type") == "BASE_TABLE":
            parts = (node.get("catalog_name", ""), node.get("schema_name", ""), node.get("table_name", ""))
            found.add(tuple(p for p in parts if p))
        for entry in (node.get("cte_map") or {}).get("map") or []:
            ctes.add(str(entry.get("key", "")).lower())
        for value in node.values():
            _base_tables(value, found, ctes)
    elif isinstance(node, list):
        for value in node:
            _base_tables(value, found, ctes)


def referenced_tables(query: str) -> list[Name]:
    """The three-level table names `query` reads, validated; raises InvalidQuery otherwise."""
    con = duckdb.connect()
    try:
        statements = con.extract_statements(query)
        if len(statements) != 1:
            raise InvalidQuery(f"Run one statement at a time (got {len(statements)}).")
        if statements[0].type != duckdb.StatementType.SELECT:
            raise InvalidQuery(
                f"Only queries (SELECT, WITH ... SELECT) run here, not {statements[0].type.name}. "
                "Write tables with `lakestack tables import` or ws.tables.write/merge."
            )
        # Parse only (no binding): parameters, USING joins and unknown functions must not fail here.
        row = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [query]).fetchone()
    except duckdb.ParserException as exc:
        raise InvalidQuery(f"SQL syntax error: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    tree = json.loads(row[0]) if row else {"error": True, "error_message": "no parse tree"}
    if tree.get("error"):
        raise InvalidQuery(f"SQL syntax error: {str(tree.get('error_message', '')).splitlines()[0]}")
    found: set[tuple[str, ...]] = set()
    ctes: set[str] = set()
    _base_tables(tree["statements"], found, ctes)
    names = set()
    for parts in found:
        if len(parts) == 1 and parts[0].lower() in ctes:
            continue
        dotted = ".".join(parts)
        try:
            names.add(Name.parse(dotted, 3))
        except InvalidName:
            raise InvalidQuery(
                f"Table reference {dotted!r} is not a three-level name: write catalog.schema.table, "
                "e.g. dev.raw.trips."
            ) from None
    return sorted(names)


def run_query(
    query: str, resolve: Resolver, parameters: list[Any] | dict[str, Any] | None = None
) -> pa.Table:
    """Run one SELECT; every table it names is resolved (and grant-checked) by `resolve`."""
    datasets = {name: resolve(name) for name in referenced_tables(query)}
    try:
        return _execute(query, datasets, parameters, pushdown=True)
    except duckdb.Error as exc:
        # delta-rs writes merged files with string_view columns, and pyarrow has no comparison
        # kernels for them (apache/arrow#49368), so a pushed-down string filter fails. Filtering
        # inside DuckDB instead is slower but correct; projections still push down.
        if "no kernel matching" not in str(exc):
            raise InvalidQuery(f"Query failed: {str(exc).splitlines()[0]}") from None
    try:
        return _execute(query, datasets, parameters, pushdown=False)
    except duckdb.Error as exc:
        raise InvalidQuery(f"Query failed: {str(exc).splitlines()[0]}") from None


def _execute(
    query: str,
    datasets: dict[Name, pads.Dataset],
    parameters: list[Any] | dict[str, Any] | None,
    pushdown: bool,
) -> pa.Table:
    con = sandboxed_connection()
    try:
        if not pushdown:
            con.execute("SET disabled_optimizers = 'filter_pushdown'")
        attached: set[str] = set()
        for index, (name, dataset) in enumerate(datasets.items()):
            view = f"__lakestack_{index}"
            con.register(view, dataset)
            if name.catalog not in attached:
                con.execute(f"ATTACH ':memory:' AS \"{name.catalog}\"")
                attached.add(name.catalog)
            # Names are validated identifiers, so quoting them here cannot be escaped.
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{name.catalog}"."{name.schema}"')
            con.execute(f'CREATE VIEW "{name.catalog}"."{name.schema}"."{name.object}" AS FROM {view}')
        lock_down(con)
        result = con.sql(query, params=parameters)
        assert result is not None  # a SELECT always has a result
        return result.to_arrow_table()
    finally:
        con.close()
