"""Batch and incremental scoring of a Delta table with a registered model (`ws.models.score_table`).

The input is read in bounded batches (a pinned version, or the change feed since the last run),
each batch is predicted (its features looked up first when the model carries a feature spec),
and every prediction goes to the output table in ONE Delta commit, together with the checkpoint
of incremental scoring (see `streaming`). A crash anywhere before that commit leaves the output
and its checkpoint exactly as they were.

Output rows: the input's key columns, `prediction`, `model_name`, `model_version` and
`scored_at` (one timestamp per run). `append` keeps every run (history accumulates),
`overwrite` keeps only this run, `merge` keeps one row per key (the newest prediction).
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from lakestack.catalog.names import Name
from lakestack.catalog.privileges import Privilege
from lakestack.errors import CommitConflict, InvalidParameter, SchemaMismatch
from lakestack.lineage.service import Lineage
from lakestack.lineage.store import NodeRef
from lakestack.models import feature_models, streaming
from lakestack.tables import observe
from lakestack.tables.arrow import conform
from lakestack.tables.delta import META_PREFIX, DeltaLocation
from lakestack.tables.service import Tables

if TYPE_CHECKING:
    from lakestack.features.store import FeatureStore
    from lakestack.models.registry import ModelRegistry, ModelVersionInfo

Mode = Literal["append", "overwrite", "merge"]
Engine = Literal["auto", "local", "ray"]
Progress = Callable[[int, int | None], None]
MODES = ("append", "overwrite", "merge")
ENGINES = ("auto", "local", "ray")
META_COLUMNS = ("prediction", "model_name", "model_version", "scored_at")
DEFAULT_BATCH_SIZE = 100_000
#: Test hook: when set to a file path, scoring writes that file once every row is scored and
#: then sleeps before committing, so a test can kill the process exactly there.
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


@dataclass(frozen=True)
class LoadedModel:
    """A model version ready to predict: the pyfunc, its feature spec and its input columns."""

    name: str
    version: int
    uri: str
    pyfunc: Any
    spec: dict[str, Any] | None
    inputs: list[str] | None  # the signature's input columns, when it has a named one


def load(resolved: ModelVersionInfo) -> LoadedModel:
    """Load an already-resolved (and grant-checked) version with its spec and signature."""
    import mlflow

    info = mlflow.models.get_model_info(resolved.uri)
    spec = (info.metadata or {}).get(feature_models.METADATA_KEY, {}).get("feature_spec")
    signature = info.signature
    inputs = None
    if signature is not None and signature.inputs is not None and signature.inputs.has_input_names():
        inputs = list(signature.inputs.input_names())
    pyfunc = mlflow.pyfunc.load_model(resolved.uri)
    return LoadedModel(resolved.name, resolved.version, resolved.uri, pyfunc, spec, inputs)


def score_table(
    registry: ModelRegistry,
    tables: Tables,
    features: FeatureStore,
    lineage: Lineage,
    storage_options: dict[str, str],
    principal: str,
    model_uri: str,
    input_table: str,
    output_table: str,
    mode: Mode = "append",
    keys: list[str] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    incremental: bool = False,
    engine: Engine = "auto",
    progress: Progress | None = None,
) -> ScoreResult:
    """Score `input_table` with `model_uri` into `output_table`; see `ModelRegistry.score_table`."""
    started = time.perf_counter()
    if mode not in MODES:
        raise InvalidParameter(f"Unknown scoring mode {mode!r}: use append, overwrite or merge.")
    if engine not in ENGINES:
        raise InvalidParameter(f"Unknown scoring engine {engine!r}: use auto, local or ray.")
    if batch_size < 1:
        raise InvalidParameter(f"batch_size must be at least 1, not {batch_size}.")
    source_name, target_name = str(Name.parse(input_table, 3)), str(Name.parse(output_table, 3))
    if source_name == target_name:
        raise InvalidParameter(f"Scoring '{source_name}' into itself: pick another output table.")
    # Grants first, cheapest first: nothing is read or loaded for a caller who may not score.
    resolved = registry.resolve(model_uri, "models.score_table")
    source = tables.get(source_name)
    target: DeltaTable | None = None
    done: int | None = None
    if tables.exists(target_name):
        tables.check_access(target_name, Privilege.MODIFY, "models.score_table")
        target = DeltaLocation(tables.get(target_name).location, storage_options).open()
        done = streaming.read_checkpoint(target, source_name)
    run = _Run(source_name, target_name, mode, resolved.name, resolved.version, source.version, principal)
    if incremental and done is not None and done >= source.version:
        return run.result(0, None, done + 1, started, "local")

    lineage.used(NodeRef("model", resolved.name, resolved.version))
    registry._uri_for_mlflow()
    model = load(resolved)
    key_columns = _keys(model, keys, source.schema, source_name)
    if mode == "merge" and not key_columns:
        raise InvalidParameter(f"Merging predictions into '{target_name}' needs key columns: pass keys=.")
    starting_version: int | None = None
    rows: pads.Dataset | pa.Table
    if incremental and done is not None:
        starting_version = done + 1
        streaming.require_change_feed(DeltaLocation(source.location, storage_options).open(), source_name)
        rows, _ = streaming.changed_rows(tables, source_name, starting_version, source.version, key_columns)
        total = rows.num_rows
    else:
        rows = tables.dataset(Name.parse(source_name, 3), source.version)
        total = rows.count_rows()
    columns = _read_columns(model, key_columns, rows.schema.names)

    use_ray = engine == "ray" or (engine == "auto" and _ray_connected())
    predicted: Iterator[pa.Table]
    if use_ray:
        from lakestack.models import scoring_ray

        predicted = scoring_ray.predict(model, rows, columns, key_columns, batch_size)
    else:
        batches = (
            rows.to_batches(max_chunksize=batch_size)
            if isinstance(rows, pa.Table)
            else rows.to_batches(columns=columns, batch_size=batch_size)
        )
        predicted = (predict_batch(features, model, batch, key_columns) for batch in batches)
    stamped = (run.stamp(part) for part in predicted)
    rows_scored, version = run.write(
        tables, lineage, storage_options, target, _counted(stamped, progress, total)
    )
    return run.result(rows_scored, version, starting_version, started, "ray" if use_ray else "local")


def predict_batch(
    features: FeatureStore | None, model: LoadedModel, batch: pa.RecordBatch | pa.Table, keys: list[str]
) -> pa.Table:
    """Key columns + `prediction` for one batch (features looked up first when the model has a spec)."""
    rows = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
    if model.spec is not None:
        assert features is not None, "feature lookups need the feature store"
        scored = feature_models.score_batch(features, model.pyfunc, model.spec, rows)
        return scored.select([*keys, "prediction"])
    wanted = [c for c in (model.inputs or rows.column_names) if model.inputs or c not in keys]
    missing = [c for c in wanted if c not in rows.column_names]
    if missing:
        raise SchemaMismatch(
            f"The input lacks column(s) {', '.join(missing)} that model '{model.name}' version "
            f"{model.version} takes."
        )
    frame = rows.select(wanted).to_pandas()
    prediction = prediction_array(model.pyfunc.predict(frame))
    return rows.select(keys).append_column("prediction", prediction)


def prediction_array(predicted: Any) -> pa.Array:
    """What a pyfunc returned, as one Arrow column: scalars, a struct per row for a DataFrame of
    several outputs, or a fixed-size list per row for a 2-D array (e.g. class probabilities)."""
    import numpy as np
    import pandas as pd

    if isinstance(predicted, pd.DataFrame):
        if predicted.shape[1] == 1:
            return pa.array(predicted.iloc[:, 0].to_numpy())
        return pa.Table.from_pandas(predicted, preserve_index=False).to_struct_array().combine_chunks()
    if isinstance(predicted, pd.Series):
        return pa.array(predicted.to_numpy())
    values = np.asarray(predicted)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
    return pa.array(values)


class _Run:
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
        fitted, _ = conform(part, schema, self.target, evolve=False)
        count[0] += fitted.num_rows
        yield from fitted.to_batches()

    def _merge(self, target: DeltaTable, rows: pa.Table, commit: CommitProperties) -> None:
        keys = [c for c in rows.column_names if c not in META_COLUMNS]
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


def _keys(model: LoadedModel, keys: list[str] | None, schema: pa.Schema, source: str) -> list[str]:
    """The columns that identify an input row in the output."""
    names = schema.names
    if keys is not None:
        found = list(dict.fromkeys(keys))
        unknown = [k for k in found if k not in names]
        if unknown:
            raise InvalidParameter(
                f"Key column(s) {', '.join(unknown)} are not columns of '{source}': {names}."
            )
        return found
    if model.spec is not None:
        found = []
        for lookup in model.spec["lookups"]:
            lookup_keys = lookup["lookup_key"]
            found += [lookup_keys] if isinstance(lookup_keys, str) else list(lookup_keys)
            if lookup["timestamp_lookup_key"] in names:
                found.append(lookup["timestamp_lookup_key"])
        return [k for k in dict.fromkeys(found) if k in names]
    if model.inputs is not None:
        found = [c for c in names if c not in model.inputs and c not in META_COLUMNS]
        if found:
            return found
    raise InvalidParameter(
        f"Cannot tell which columns of '{source}' identify a row for model '{model.name}' (it has no "
        "feature spec, and its signature takes every column): pass keys=[...]."
    )


def _read_columns(model: LoadedModel, keys: list[str], names: list[str]) -> list[str] | None:
    # Only what the model and the output need: a wide input costs no more than its features.
    if model.spec is not None or model.inputs is None:
        return None
    return [c for c in names if c in keys or c in model.inputs]


def _counted(parts: Iterator[pa.Table], progress: Progress | None, total: int | None) -> Iterator[pa.Table]:
    done = 0
    for part in parts:
        done += part.num_rows
        if progress is not None:
            progress(done, total)
        yield part


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


def _ray_connected() -> bool:
    """Whether this process already drives a Ray cluster (a job task on Ray compute does)."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _pause_before_commit() -> None:
    marker = os.environ.get(PAUSE_BEFORE_COMMIT_ENV)
    if marker:
        with open(marker, "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(600)
