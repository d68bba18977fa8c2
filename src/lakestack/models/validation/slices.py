"""Slice expressions: which rows of the evaluation data a per-slice threshold looks at.

A slice is one SQL expression over the data's columns, e.g. `region = 'north'` or
`age >= 60 AND plan IN ('a', 'b')`, or a bare column name for one slice per value. It is parsed
by DuckDB and its syntax tree checked against an allow-list before it runs: column references
(to columns the data has), constants, comparisons, AND/OR/NOT, IN, BETWEEN, IS NULL, LIKE,
CAST, arithmetic and a few scalar functions. Statements, subqueries, table functions and
anything else are refused, and the query runs with external access disabled, so a slice
cannot read files or touch anything but the rows it is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from lakestack.errors import InvalidParameter

_CLASSES = frozenset(
    {"CONJUNCTION", "COMPARISON", "COLUMN_REF", "CONSTANT", "OPERATOR", "BETWEEN", "CAST", "FUNCTION"}
)
_OPERATORS = frozenset(
    {"COMPARE_IN", "COMPARE_NOT_IN", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "OPERATOR_NOT"}
)
_FUNCTIONS = frozenset(
    {
        "+", "-", "*", "/", "//", "%",
        "~~", "!~~", "~~*", "!~~*",  # LIKE, NOT LIKE, ILIKE, NOT ILIKE
        "lower", "upper", "trim", "length", "abs", "round", "floor", "ceil", "coalesce",
        "year", "month", "day", "hour", "dayofweek", "date_trunc", "prefix", "suffix", "contains",
    }
)  # fmt: skip
# Parts of the wrapping SELECT that must stay empty: the text is an expression, not a query.
_EMPTY_PARTS = ("modifiers", "group_expressions", "group_sets")
_NULL_PARTS = ("where_clause", "having", "sample", "qualify")
# One slice per value is for categories; a column with more values wants an expression.
MAX_VALUES = 100


@dataclass(frozen=True)
class Slice:
    """One slice: its label (`region = 'north'`) and a boolean row mask."""

    label: str
    mask: np.ndarray


def _connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET enable_external_access = false")
    return con


def validate(expression: str, columns: list[str]) -> str | None:
    """Check `expression` is one safe expression over `columns`.

    Returns the column name when the expression is a bare column (one slice per value), else
    None. Raises InvalidParameter naming what is not allowed.
    """
    text = (expression or "").strip()
    if not text:
        raise InvalidParameter("A slice expression is empty: write e.g. region = 'north', or a column name.")
    if "--" in text or "/*" in text or ";" in text:
        # A comment or a statement break would change what the wrapping query means.
        raise InvalidParameter(f"Slice expression {text!r} must not contain comments (--, /*) or ';'.")
    con = _connect()
    try:
        raw = con.execute("SELECT json_serialize_sql(?)", [f"SELECT {text}"]).fetchone()[0]
    finally:
        con.close()
    tree = json.loads(raw)
    if tree.get("error") or len(tree.get("statements", [])) != 1:
        raise InvalidParameter(
            f"Slice expression {text!r} is not one SQL expression "
            f"({tree.get('error_message', 'more than one statement')})."
        )
    node = tree["statements"][0]["node"]
    if (
        node.get("type") != "SELECT_NODE"
        or len(node.get("select_list", [])) != 1
        or node.get("from_table", {}).get("type") != "EMPTY"
        or node.get("cte_map", {}).get("map")
        or any(node.get(part) for part in _EMPTY_PARTS)
        or any(node.get(part) is not None for part in _NULL_PARTS)
    ):
        raise InvalidParameter(
            f"Slice expression {text!r} must be a single expression over the data's columns, "
            "e.g. region = 'north' AND age >= 60; not a query or statement."
        )
    expr = node["select_list"][0]
    if expr.get("alias"):
        raise InvalidParameter(f"Slice expression {text!r} must not have an alias.")
    _check_node(expr, text, columns)
    if expr["class"] == "COLUMN_REF":
        return str(expr["column_names"][-1])
    return None


def _check_node(node: Any, text: str, columns: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _check_node(item, text, columns)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("class")
    if kind is not None and kind != "TYPE":
        if kind not in _CLASSES:
            raise InvalidParameter(
                f"Slice expression {text!r}: {kind.lower().replace('_', ' ')} is not allowed; use "
                "comparisons, AND/OR/NOT, IN, BETWEEN, IS NULL, LIKE and simple functions over columns."
            )
        if kind == "OPERATOR" and node.get("type") not in _OPERATORS:
            raise InvalidParameter(f"Slice expression {text!r}: operator {node.get('type')} is not allowed.")
        if kind == "FUNCTION":
            name = str(node.get("function_name", ""))
            if name not in _FUNCTIONS or node.get("schema") or node.get("catalog"):
                raise InvalidParameter(
                    f"Slice expression {text!r}: function {name!r} is not allowed "
                    f"(allowed: {', '.join(sorted(f for f in _FUNCTIONS if f.isalpha()))})."
                )
        if kind == "COLUMN_REF":
            names = node.get("column_names", [])
            if len(names) != 1 or names[0] not in columns:
                raise InvalidParameter(
                    f"Slice expression {text!r} names column {'.'.join(names)!r}, which the data does "
                    f"not have. Columns: {', '.join(columns)}."
                )
    for key, value in node.items():
        if key != "literal":
            _check_node(value, text, columns)


def evaluate(expression: str, data: pa.Table) -> list[Slice]:
    """The slices `expression` makes of `data` (validated first): one for an expression, one per
    distinct value (nulls excluded) for a bare column name."""
    column = validate(expression, data.column_names)
    con = _connect()
    try:
        con.register("slice_data", data)
        if column is not None:
            values = data.column(column).to_numpy(zero_copy_only=False)
            distinct = sorted({v for v in values.tolist() if v is not None}, key=str)
            if len(distinct) > MAX_VALUES:
                raise InvalidParameter(
                    f"Slice column {column!r} has {len(distinct)} distinct values (at most {MAX_VALUES} "
                    f"make one slice each): slice it with an expression instead, e.g. {column} > 10."
                )
            return [Slice(f"{column} = {value!r}", values == value) for value in distinct]
        found = con.execute(f"SELECT coalesce(({expression.strip()}), false) FROM slice_data").fetchall()  # noqa: S608 — the expression passed the allow-list above
        return [Slice(expression.strip(), np.array([bool(row[0]) for row in found], dtype=bool))]
    finally:
        con.close()
