"""Data-quality expectations on writes, as in Delta Live Tables.

An expectation is a named SQL boolean expression over the incoming rows, with an action:
- ``warn``: keep every row, record how many failed;
- ``drop``: keep only passing rows;
- ``fail``: reject the whole write if any row fails (the table is left untouched).

A row whose expression is NULL counts as failing: "not known to be valid" is not valid.
The counts are stored with the Delta commit, so `tables history` shows them per version.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from lakestack.catalog.names import validate_part
from lakestack.errors import ExpectationFailed, InvalidParameter
from lakestack.tables.sandbox import lock_down, sandboxed_connection

Action = Literal["warn", "drop", "fail"]
ACTIONS: tuple[Action, ...] = ("warn", "drop", "fail")


@dataclass(frozen=True)
class Expectation:
    """`Expectation("valid_fare", "fare >= 0", "drop")`."""

    name: str
    condition: str
    action: Action = "warn"

    def __post_init__(self) -> None:
        validate_part(self.name, "expectation name")
        if self.action not in ACTIONS:
            raise InvalidParameter(
                f"Expectation '{self.name}' has action {self.action!r}: use warn, drop or fail."
            )
        if ";" in self.condition:
            raise InvalidParameter(f"Expectation '{self.name}' must be one SQL expression, without ';'.")


@dataclass(frozen=True)
class ExpectationResult:
    name: str
    condition: str
    action: str
    passed: int
    failed: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def apply_expectations(
    table: pa.Table, expectations: list[Expectation], target: str
) -> tuple[pa.Table, list[ExpectationResult]]:
    """Evaluate every expectation on `table`; return the rows to write and the counts.

    Raises ExpectationFailed (before anything is written) when a `fail` expectation is violated.
    """
    if not expectations:
        return table, []
    con = sandboxed_connection()
    con.register("incoming", table)
    lock_down(con)
    # Columns by position: a stored and a per-write expectation may share a name.
    flags = ", ".join(f'coalesce(({e.condition}), false) AS "e{i}"' for i, e in enumerate(expectations))
    try:
        verdicts = con.sql(f"SELECT {flags} FROM incoming").to_arrow_table()  # noqa: S608
    except duckdb.Error as exc:
        detail = str(exc).splitlines()[0]
        names = ", ".join(e.name for e in expectations)
        raise InvalidParameter(
            f"An expectation of {names} on '{target}' is not valid SQL: {detail}"
        ) from None
    finally:
        con.close()
    results, keep = [], pa.array([True] * table.num_rows, pa.bool_())
    for i, e in enumerate(expectations):
        ok = verdicts.column(i).combine_chunks()
        passed = int(pc.sum(ok).as_py() or 0)
        results.append(ExpectationResult(e.name, e.condition, e.action, passed, table.num_rows - passed))
        if e.action == "drop":
            keep = pc.and_(keep, ok)
    for r in results:
        if r.action == "fail" and r.failed:
            raise ExpectationFailed(
                f"Expectation '{r.name}' ({r.condition}) failed for {r.failed} of {r.passed + r.failed} "
                f"row(s) written to '{target}'; nothing was written. Fix the data, or make it warn/drop."
            )
    return table.filter(keep), results
