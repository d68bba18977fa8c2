"""Tables: append, merge and read through `ws.tables` versus the same work on plain deltalake.

Both sides get the same generated rows and write to sibling folders of one temp dir. The
lakestack side pays for what it adds on every call: the grants check, the audit event, the
schema conform and the commit metadata. The anchor's table gets lakestack's default table
configuration (change data feed on), so the Delta work itself is identical.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from harness import Row, timed
from lakestack.workspace import Workspace

SIZES = {"small": (100_000, 10_000), "full": (1_000_000, 100_000)}  # rows in the table, rows merged
WARMUP_SIZE = (10_000, 1_000)
READS = 5  # reads timed per repeat and side
SEED = 20261123
START = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(seconds=30)  # row i happened at START + i * STEP: the table is in time order
STEP_US, START_US = STEP // timedelta(microseconds=1), int(START.timestamp()) * 1_000_000
COUNTRIES = ["DE", "FR", "NL", "BE", "ES", "IT", "PT", "PL", "SE", "DK", "NO", "FI", "AT", "CH", "IE", "GB"]
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("user", pa.string()),
        ("country", pa.string()),
        ("amount", pa.float64()),
        ("quantity", pa.int32()),
        ("score", pa.float32()),
        ("is_return", pa.bool_()),
    ]
)
CHANGE_DATA_FEED = {"delta.enableChangeDataFeed": "true"}  # lakestack's default, given to the anchor too


def make_rows(ids: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """Rows for `ids`: a timestamp derived from the id, two string columns, numbers and a flag."""
    n = len(ids)
    users = pc.cast(pa.array(rng.integers(0, 50_000, n)), pa.string())
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "ts": pa.array(START_US + ids * STEP_US, SCHEMA[1].type),
            "user": pc.binary_join_element_wise("user_", users, ""),
            "country": pc.take(pa.array(COUNTRIES), pa.array(rng.integers(0, len(COUNTRIES), n))),
            "amount": pa.array(rng.gamma(2.0, 40.0, n)),
            "quantity": pa.array(rng.integers(1, 20, n, dtype=np.int32)),
            "score": pa.array(rng.random(n, dtype=np.float32)),
            "is_return": pa.array(rng.random(n) < 0.05),
        },
        schema=SCHEMA,
    )


@dataclass(frozen=True)
class Data:
    base: pa.Table  # appended to an empty table
    upsert: pa.Table  # half of its ids are in `base` (updates), half are new (inserts)
    cutoff: datetime  # the filtered read keeps the newest ~10 % of rows, those with amount > 100


def make_data(rows: int, merged: int) -> Data:
    rng = np.random.default_rng(SEED)
    updates = rng.choice(rows, merged // 2, replace=False)
    inserts = np.arange(rows, rows + merged - merged // 2)
    upsert_ids = rng.permutation(np.concatenate([updates, inserts]))
    return Data(make_rows(np.arange(rows), rng), make_rows(upsert_ids, rng), START + STEP * int(rows * 0.9))


class Side(Protocol):
    def create(self) -> None: ...
    def write(self, data: pa.Table) -> Any: ...
    def merge(self, data: pa.Table) -> Any: ...
    def read(self, cutoff: datetime | None = None) -> Any: ...
    def drop(self) -> None: ...


class Lakestack:
    """The governed path: `ws.tables` (grants check, audit event, conform, commit metadata)."""

    def __init__(self, ws: Workspace, name: str) -> None:
        self.ws, self.name = ws, name

    def create(self) -> None:
        self.ws.tables.create(self.name, schema=SCHEMA)

    def write(self, data: pa.Table) -> Any:
        return self.ws.tables.write(self.name, data).rows_written

    def merge(self, data: pa.Table) -> Any:
        metrics = self.ws.tables.merge(self.name, data, keys=["id"]).metrics
        return metrics["num_target_rows_updated"], metrics["num_target_rows_inserted"]

    def read(self, cutoff: datetime | None = None) -> Any:
        filters = [("ts", ">=", cutoff), ("amount", ">", 100.0)] if cutoff else None
        return self.ws.tables.read(self.name, filters=filters).num_rows

    def drop(self) -> None:
        self.ws.tables.drop(self.name)


class Plain:
    """The anchor: what a user of deltalake alone would write."""

    def __init__(self, path: Path) -> None:
        self.uri = str(path)

    def create(self) -> None:
        DeltaTable.create(self.uri, schema=SCHEMA, configuration=CHANGE_DATA_FEED)

    def write(self, data: pa.Table) -> Any:
        write_deltalake(self.uri, data, mode="append")
        return data.num_rows

    def merge(self, data: pa.Table) -> Any:
        merger = DeltaTable(self.uri).merge(data, predicate="t.id = s.id", source_alias="s", target_alias="t")
        metrics = merger.when_matched_update_all().when_not_matched_insert_all().execute()
        return metrics["num_target_rows_updated"], metrics["num_target_rows_inserted"]

    def read(self, cutoff: datetime | None = None) -> Any:
        dataset = DeltaTable(self.uri).to_pyarrow_dataset()
        if cutoff is None:
            return dataset.to_table().num_rows
        expression = (pc.field("ts") >= pa.scalar(cutoff, SCHEMA[1].type)) & (pc.field("amount") > 100.0)
        return dataset.to_table(filter=expression).num_rows

    def drop(self) -> None:
        shutil.rmtree(self.uri)


def steps(data: Data) -> list[tuple[str, Callable[[Side], Any], int]]:
    """The benchmarks, in the order they run on each repeat's fresh table, with runs per repeat.

    Reads leave the table as it is, so each repeat times them several times: they take tens of
    milliseconds, where one run is easily swayed by whatever else the machine is doing.
    """
    rows, merged = data.base.num_rows, data.upsert.num_rows
    return [
        (f"write: append {rows:,} rows", lambda side: side.write(data.base), 1),
        (f"merge: upsert {merged:,} rows (50% updates) on id", lambda side: side.merge(data.upsert), 1),
        (f"read: full table to Arrow ({rows + merged // 2:,} rows)", lambda side: side.read(), READS),
        ("read: filter pushed down (ts >= t, amount > 100)", lambda side: side.read(data.cutoff), READS),
    ]


def run_repeats(ws: Workspace, plain_root: Path, data: Data, repeats: int, tag: str) -> list[Row]:
    """Each repeat: a fresh empty table per side, then every step on both sides back to back.

    The side that goes first alternates, so neither always gets the warmer cache.
    """
    work = steps(data)
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, _, _ in work}
    for repeat in range(repeats):
        lakestack: Side = Lakestack(ws, f"dev.bench.{tag}_{repeat}")
        plain: Side = Plain(plain_root / f"{tag}_{repeat}")
        lakestack.create()
        plain.create()
        for name, step, runs in work:
            for run in range(runs):
                seconds: dict[Side, float] = {}
                outputs: dict[Side, Any] = {}
                for side in (lakestack, plain) if (repeat + run) % 2 == 0 else (plain, lakestack):
                    seconds[side], outputs[side] = timed(partial(step, side))
                if outputs[lakestack] != outputs[plain]:  # the same work, or the comparison means nothing
                    raise AssertionError(
                        f"{name}: lakestack gave {outputs[lakestack]!r}, deltalake {outputs[plain]!r}"
                    )
                times[name][0].append(seconds[lakestack])
                times[name][1].append(seconds[plain])
        lakestack.drop()
        plain.drop()
    return [Row(name, ls, pl) for name, (ls, pl) in times.items()]


def run(scale: str, repeats: int) -> list[Row]:
    rows, merged = SIZES[scale]
    print(f"  generating {rows:,} + {merged:,} rows", file=sys.stderr)
    data = make_data(rows, merged)
    with tempfile.TemporaryDirectory(prefix="lakestack-bench-") as tmp:
        ws = Workspace.init(Path(tmp) / "workspace")
        ws.schemas.create("dev.bench")
        plain_root = Path(tmp) / "plain"
        plain_root.mkdir()
        try:
            run_repeats(ws, plain_root, make_data(*WARMUP_SIZE), 1, "warmup")  # imports, engines, caches
            return run_repeats(ws, plain_root, data, repeats, "t")
        finally:
            ws.close()
