"""The one commit of a scoring run: predictions, checkpoint and commit metadata together.

`ScoringRun.write` pulls the predicted batches (produced on a thread of their own, a couple of
batches ahead), fits them to the output table's schema, and hands them to Delta as one stream:
one new version of the output, holding every row of the run and the incremental checkpoint,
or, if anything fails or the process dies first, no new version at all.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from lakestack.errors import CommitConflict, InvalidParameter, SchemaMismatch
from lakestack.lineage.service import Lineage
from lakestack.lineage.store import NodeRef
from lakestack.models import streaming
from lakestack.tables import observe
from lakestack.tables.arrow import conform
from lakestack.tables.delta import META_PREFIX, DeltaLocation
from lakestack.tables.service import Tables

META_COLUMNS = ("prediction", "model_name", "model_version", "scored_at")
#: Test hook: when set to a file path, scoring writes that file once every row is scored, then
#: waits (up to 10 minutes) until the file is removed before committing, so a test can kill the
#: process exactly there, or let another run commit first.
PAUSE_BEFORE_COMMIT_ENV = "LAKESTACK_TEST_PAUSE_BEFORE_SCORING_COMMIT"


@dataclass(frozen=True)
class ScoreResult:
    """What one scoring run did. `output_version` is None when there was nothing to write."""

    input_table: str
    output_table: str
    mode: str
    rows_scored: int
    output_version: int | None
    model_name: str
    model_version: int
    input_version: int
    starting_version: int | None  # incremental: first input version read; None = the whole table
    scored_at: datetime
    seconds: float
    engine: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "scored_at": self.scored_at.isoformat()}


class ScoringRun:
    """One scoring run's constants, and its single commit to the output."""

    def __init__(
        self,
        source: str,
        target: str,
        mode: str,
        model_name: str,
        model_version: int,
        source_version: int,
        principal: str,
    ) -> None:
        self.source, self.target, self.mode = source, target, mode
        self.model_name, self.model_version = model_name, model_version
        self.source_version, self.principal = source_version, principal
        self.scored_at = datetime.now(UTC)  # one timestamp for every row of the run

    def stamp(self, part: pa.Table) -> pa.Table:
        n = part.num_rows
        return (
            part.append_column("model_name", pa.repeat(pa.scalar(self.model_name), n))
            .append_column("model_version", pa.repeat(pa.scalar(self.model_version, pa.int64()), n))
            .append_column("scored_at", pa.repeat(pa.scalar(self.scored_at, pa.timestamp("us", "UTC")), n))
        )

    def write(
        self,
        tables: Tables,
        lineage: Lineage,
        storage_options: dict[str, str],
        target: DeltaTable | None,
        parts: Iterator[pa.Table],
    ) -> tuple[int, int | None]:
        """Commit every part, and the checkpoint, as one new version of the output."""
        first = next(parts, None)
        if first is None and target is None:
            return 0, None  # nothing scored and no table to hold a checkpoint in yet
        if target is None:
            assert first is not None
            # Creating the table needs CREATE_TABLE on its schema, checked by `create`.
            info = tables.create(
                self.target, schema=first.schema, comment=f"Predictions of {self.model_name}"
            )
            target = DeltaLocation(info.location, storage_options).open()
        schema = pa.schema(target.schema().to_arrow())
        count = [0]

        def fitted() -> Iterator[pa.RecordBatch]:
            for part in [first] if first is not None else []:
                yield from self._fit(part, schema, count)
            for part in parts:
                yield from self._fit(part, schema, count)
            _pause_before_commit()

        commit = CommitProperties(
            custom_metadata={
                META_PREFIX + "principal": self.principal,
                META_PREFIX + "operation": "SCORE",
                META_PREFIX + "model": f"{self.model_name}/{self.model_version}",
                META_PREFIX + "input": f"{self.source}@{self.source_version}",
            },
            app_transactions=[streaming.checkpoint(self.source, self.source_version)],
        )
        reader = pa.RecordBatchReader.from_batches(schema, _prefetched(fitted()))
        try:
            if self.mode == "merge":
                self._merge(target, reader.read_all(), commit)
            elif self.mode == "overwrite":
                write_deltalake(target, reader, mode="overwrite", commit_properties=commit)
            else:
                write_deltalake(target, reader, mode="append", commit_properties=commit)
        except CommitFailedError:
            raise CommitConflict(
                f"Another writer committed to '{self.target}' while this run scored '{self.source}'. "
                "Run again: the checkpoint makes it score only what is still unscored."
            ) from None
        version = target.version()
        self._record(lineage, tables, target, version)
        return count[0], version

    def _fit(self, part: pa.Table, schema: pa.Schema, count: list[int]) -> Iterator[pa.RecordBatch]:
        try:
            fitted, _ = conform(part, schema, self.target, evolve=False)
        except SchemaMismatch as exc:
            raise SchemaMismatch(
                f"Predictions of '{self.model_name}' do not fit the existing table '{self.target}' "
                f"({exc.message}) Score into a new table, or drop this one first."
            ) from None
        count[0] += fitted.num_rows
        yield from fitted.to_batches()

    def _merge(self, target: DeltaTable, rows: pa.Table, commit: CommitProperties) -> None:
        keys = [c for c in rows.column_names if c not in META_COLUMNS]
        nulls = [k for k in keys if rows.column(k).null_count]
        if nulls:
            # A null key matches nothing: every rerun would insert that row again.
            raise InvalidParameter(
                f"Key column(s) {', '.join(nulls)} of '{self.source}' hold nulls, so those rows cannot "
                f"be merged into '{self.target}'. Fill or filter them, or use mode='append'."
            )
        counts = rows.group_by(keys).aggregate([([], "count_all")])
        repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
        if repeated.num_rows:
            raise InvalidParameter(
                f"'{self.source}' has {repeated.num_rows} key(s) appearing more than once (keys "
                f"{keys}), so merging one prediction per key into '{self.target}' is ambiguous. "
                "Pass keys= that identify a row, or use mode='append'."
            )
        predicate = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
        merger = target.merge(
            rows, predicate=predicate, source_alias="s", target_alias="t", commit_properties=commit
        )
        merger.when_matched_update_all().when_not_matched_insert_all().execute()

    def _record(self, lineage: Lineage, tables: Tables, target: DeltaTable, version: int) -> None:
        output = NodeRef("table", self.target, version)
        lineage.link(NodeRef("table", self.source, self.source_version), output)
        lineage.link(NodeRef("model", self.model_name, self.model_version), output)
        if observe.active():  # a surrounding run or job task records the write too
            observe.emit(observe.TableAccess("write", self.target, version, target.table_uri, self.principal))

    def result(
        self, rows: int, version: int | None, starting: int | None, started: float, engine: str
    ) -> ScoreResult:
        return ScoreResult(
            input_table=self.source,
            output_table=self.target,
            mode=self.mode,
            rows_scored=rows,
            output_version=version,
            model_name=self.model_name,
            model_version=self.model_version,
            input_version=self.source_version,
            starting_version=starting,
            scored_at=self.scored_at,
            seconds=round(time.perf_counter() - started, 3),
            engine=engine,
        )


def _prefetched(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """`batches`, produced on a thread of their own, at most `depth` ahead of the consumer.

    The Delta writer pulls batches from inside its async runtime, where opening another Delta
    table (a feature lookup) would panic; and producing on a thread lets the next batch be read
    and predicted while the writer encodes the previous one.
    """
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        slots.put(("batch", batch), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it in its thread
            slots.put(("error", exc))

    producer = threading.Thread(target=produce, name="lakestack-score", daemon=True)
    producer.start()
    try:
        while True:
            kind, value = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(queue.Empty):
                slots.get(timeout=0.1)
        producer.join()


def _pause_before_commit() -> None:
    marker = os.environ.get(PAUSE_BEFORE_COMMIT_ENV)
    if marker:
        with open(marker, "w") as handle:
            handle.write(str(os.getpid()))
        deadline = time.monotonic() + 600
        while os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
