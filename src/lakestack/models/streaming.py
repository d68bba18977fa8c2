"""The checkpoint of incremental scoring, and the input rows that arrived since it.

The checkpoint lives in the output table's own Delta log, as a transaction identifier (a `txn`
action: appId `lakestack.score:<input table>`, version = the input version scored up to). It is
committed in the same commit as the predictions, so the two cannot disagree: a run that dies
before its commit leaves neither, and the next run scores the same input rows again, once.
Two runs racing on one output both read the same checkpoint; Delta refuses the second commit
because the first one changed that appId, so no row is scored into the output twice.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, Transaction

from lakestack.errors import ChangesUnavailable, InvalidParameter
from lakestack.tables.service import Tables

APP_PREFIX = "lakestack.score:"
CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
# An update's new image is a row to score again; deletes and pre-images are not.
SCORED_CHANGES = ("insert", "update_postimage")


def app_id(input_table: str) -> str:
    """The Delta transaction appId that tracks how far `input_table` has been scored."""
    return APP_PREFIX + input_table


def read_checkpoint(output: DeltaTable, input_table: str) -> int | None:
    """The input version the output already holds predictions up to, or None if never scored."""
    version = output.transaction_version(app_id(input_table))
    return None if version is None else int(version)


def checkpoint(input_table: str, input_version: int) -> Transaction:
    """The transaction identifier to commit with the predictions for `input_version`."""
    return Transaction(app_id(input_table), input_version)


def require_change_feed(source: DeltaTable, input_table: str) -> None:
    """Fail early, with the fix, when the input does not record its changes."""
    configuration: dict[str, Any] = dict(source.metadata().configuration or {})
    if str(configuration.get("delta.enableChangeDataFeed", "false")).lower() != "true":
        raise ChangesUnavailable(
            f"Table '{input_table}' does not record its changes (change data feed is off), so it "
            "cannot be scored incrementally. Score it in full (incremental=False), or recreate it "
            "with change_data_feed=True."
        )


def changed_rows(
    tables: Tables, input_table: str, start: int, end: int, keys: list[str]
) -> tuple[pa.Table, int]:
    """Rows inserted or updated in input versions `start`..`end`, one per key (its newest image).

    Returns the rows without the change-feed columns, and how many change records were read.
    """
    try:
        changes = tables.changes(input_table, starting_version=start, ending_version=end)
    except InvalidParameter as exc:
        raise ChangesUnavailable(
            f"The changes of '{input_table}' from version {start} to {end} are no longer readable "
            f"({exc.message}); history was vacuumed or the change feed was turned on later. "
            "Rescore the table in full once (incremental=False, mode='overwrite'); later incremental "
            "runs continue from there."
        ) from None
    records = changes.num_rows
    wanted = changes.filter(pc.is_in(changes.column("_change_type"), pa.array(SCORED_CHANGES)))
    if keys and wanted.num_rows:
        wanted = _newest_per_key(wanted, keys)
    return wanted.drop_columns([c for c in CDF_COLUMNS if c in wanted.column_names]), records


def _newest_per_key(rows: pa.Table, keys: list[str]) -> pa.Table:
    # A key inserted then updated within one run is scored once, on its newest image.
    ordered = rows.sort_by([("_commit_version", "descending")])
    ordered = ordered.append_column("__row", pa.array(range(ordered.num_rows), pa.int64()))
    firsts = ordered.group_by(keys, use_threads=False).aggregate([("__row", "min")])
    picked = pc.sort_indices(firsts.column("__row_min"))
    return ordered.take(pc.take(firsts.column("__row_min"), picked)).drop_columns(["__row"])
