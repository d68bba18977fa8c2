"""Delta IO on one storage location: commits retried on conflict, schema checked before writing.

Nothing here knows about names or grants; `tables.service` adds those.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from lakestack.errors import InvalidParameter, SchemaMismatch, TableDataMissing, VersionNotFound
from lakestack.tables.arrow import conform, to_arrow
from lakestack.tables.retry import with_commit_retry

WriteMode = Literal["append", "overwrite"]
Filters = list[tuple[str, str, Any]]
META_PREFIX = "lakestack."


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a table: what changed it, who, and what its expectations found."""

    version: int
    timestamp: datetime
    operation: str
    principal: str | None
    parameters: dict[str, Any]
    metrics: dict[str, Any]
    expectations: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DeltaLocation:
    """One table's storage. Reuses the Delta log it already read across the steps of a write."""

    uri: str
    storage_options: dict[str, str] = field(default_factory=dict)
    _latest: DeltaTable | None = field(default=None, init=False, repr=False, compare=False)

    def latest(self) -> DeltaTable:
        """The newest version; after the first call only new log entries are read."""
        if self._latest is None:
            self._latest = self.open()
        else:
            self._latest.update_incremental()
        return self._latest

    def exists(self) -> bool:
        return DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options or None)

    def open(self, version: int | None = None, timestamp: datetime | str | None = None) -> DeltaTable:
        """The table at its newest version, a version number, or the version current at `timestamp`."""
        if version is not None and timestamp is not None:
            raise InvalidParameter("Pass a version or a timestamp, not both.")
        if version is not None and version < 0:
            raise VersionNotFound(f"Version {version} of the table does not exist: versions start at 0.")
        try:
            table = DeltaTable(self.uri, version=version, storage_options=self.storage_options or None)
        except TableNotFoundError:
            raise TableDataMissing(
                f"No Delta table at {self.uri}: its data was removed outside lakestack. "
                "Restore the folder from a backup, or drop the table."
            ) from None
        except DeltaError:
            if version is not None:
                raise VersionNotFound(
                    f"Version {version} of the table does not exist; `tables history` lists its versions."
                ) from None
            raise
        if timestamp is not None:
            try:
                table.load_as_version(timestamp)
            except (DeltaError, ValueError) as exc:
                raise InvalidParameter(f"No version of the table at {timestamp}: {exc}.") from None
            _check_not_before_first_commit(table, timestamp, self.storage_options)
        return table

    def schema(self) -> pa.Schema:
        return pa.schema(self.latest().schema().to_arrow())

    # --- writing -------------------------------------------------------------------------

    def create(
        self,
        schema: pa.Schema,
        partition_by: list[str],
        description: str | None,
        configuration: dict[str, str],
        metadata: dict[str, str],
        data: pa.Table | None = None,
    ) -> None:
        """Create the table as version 0, holding `data` when given."""
        unknown = [c for c in partition_by if schema.get_field_index(c) == -1]
        if unknown:
            raise SchemaMismatch(f"Partition column(s) {', '.join(unknown)} are not in the schema.")
        if data is not None:
            write_deltalake(
                self.uri,
                data,
                mode="error",
                partition_by=partition_by or None,
                description=description,
                configuration=configuration,
                storage_options=self.storage_options or None,
                commit_properties=_commit(metadata),
            )
            return
        DeltaTable.create(
            self.uri,
            schema=schema,
            mode="error",
            partition_by=partition_by or None,
            description=description,
            configuration=configuration,
            storage_options=self.storage_options or None,
            commit_properties=_commit(metadata),
        )

    def write(
        self, data: pa.Table, mode: WriteMode, name: str, evolve: bool, metadata: dict[str, str]
    ) -> int:
        """Append or overwrite; returns the new version."""

        def attempt() -> int:
            table = self.latest()
            conformed, grows = conform(data, pa.schema(table.schema().to_arrow()), name, evolve)
            write_deltalake(
                table,
                conformed,
                mode=mode,
                schema_mode="merge" if grows else None,
                commit_properties=_commit(metadata),
            )
            return table.version()

        return with_commit_retry(attempt, name)

    def merge(
        self,
        data: pa.Table,
        keys: list[str],
        name: str,
        delete_condition: str | None,
        evolve: bool,
        metadata: dict[str, str],
        provided: list[str] | None = None,
    ) -> dict[str, Any]:
        """Upsert `data` on `keys`; rows satisfying `delete_condition` are deleted, not upserted.

        `provided` names the columns the caller actually sent: a matched row keeps its other
        columns (inserted rows get nulls there), so a partial upsert never wipes data.
        """
        _check_merge_keys(data, keys, name)

        def attempt() -> dict[str, Any]:
            table = self.latest()
            conformed, grows = conform(data, pa.schema(table.schema().to_arrow()), name, evolve)
            missing = [k for k in keys if conformed.schema.get_field_index(k) == -1]
            if missing:
                raise SchemaMismatch(f"Merge key(s) {', '.join(missing)} are not columns of '{name}'.")
            predicate = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
            merger = table.merge(
                conformed,
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                merge_schema=grows,
                commit_properties=_commit(metadata),
            )
            if delete_condition:
                merger = merger.when_matched_delete(predicate=delete_condition)
            if provided is not None and set(conformed.schema.names) - set(provided):
                merger = merger.when_matched_update(updates={f'"{c}"': f's."{c}"' for c in provided})
            else:
                merger = merger.when_matched_update_all()
            # A row marked for deletion that matches nothing is not inserted either.
            insert_if = f"NOT coalesce(({delete_condition}), false)" if delete_condition else None
            metrics = merger.when_not_matched_insert_all(predicate=insert_if).execute()
            return {**metrics, "version": table.version()}

        try:
            return with_commit_retry(attempt, name)
        except DeltaError as exc:
            if "CommitFailed" in type(exc).__name__:
                raise
            raise InvalidParameter(f"Merge into '{name}' failed: {str(exc).splitlines()[0]}") from None

    # --- reading -------------------------------------------------------------------------

    def dataset(self, source: DeltaTable) -> pads.Dataset:
        """An Arrow dataset over an opened version. Local tables are read through pyarrow's own
        filesystem: through delta-rs's, the process could abort at exit while its I/O threads
        were torn down ("terminate called without an active exception", a few % of runs)."""
        if "://" in self.uri and not self.uri.startswith("file://"):
            return source.to_pyarrow_dataset()
        from pyarrow import fs as pafs

        root = self.uri.removeprefix("file://")
        return source.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(root, pafs.LocalFileSystem()))

    def read(
        self,
        source: DeltaTable,
        columns: list[str] | None = None,
        filters: Filters | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Rows of an opened table version (see `open`): columns, filters pushed down, a limit."""
        dataset = self.dataset(source)
        unknown = [c for c in (columns or []) if c not in dataset.schema.names]
        if unknown:
            raise InvalidParameter(
                f"Unknown column(s) {', '.join(unknown)}; the table has {dataset.schema.names}."
            )
        expression = pq.filters_to_expression(filters) if filters else None
        try:
            if limit is not None:
                return dataset.head(limit, columns=columns, filter=expression)
            return dataset.to_table(columns=columns, filter=expression)
        except pa.ArrowNotImplementedError:
            if expression is None:
                raise
        # Files written by delta-rs merges hold string_view columns, which pyarrow cannot compare
        # (apache/arrow#49368). Scanned without the filter they come back as plain strings, so
        # filter after the scan: same rows, no file skipping.
        needed = None if columns is None else sorted(set(columns) | {f[0] for f in filters or []})
        table = dataset.to_table(columns=needed).filter(expression)
        table = table if columns is None else table.select(columns)
        return table if limit is None else table.slice(0, limit)

    def changes(self, starting_version: int, ending_version: int | None) -> pa.Table:
        reader = self.open().load_cdf(starting_version=starting_version, ending_version=ending_version)
        return to_arrow(pa.table(reader.read_all()))  # plain strings, as every other read returns

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        entries = []
        for raw in self.open().history(limit):
            custom = {k[len(META_PREFIX) :]: v for k, v in raw.items() if k.startswith(META_PREFIX)}
            entries.append(
                HistoryEntry(
                    version=int(raw["version"]),
                    timestamp=datetime.fromtimestamp(raw["timestamp"] / 1000, tz=UTC),
                    operation=str(raw.get("operation", "")),
                    principal=custom.get("principal"),
                    parameters=dict(raw.get("operationParameters") or {}),
                    metrics=dict(raw.get("operationMetrics") or {}),
                    expectations=json.loads(custom.get("expectations", "[]")),
                )
            )
        return entries

    # --- maintenance ---------------------------------------------------------------------

    def restore(self, version: int | None, timestamp: datetime | str | None, metadata: dict[str, str]) -> Any:
        target: int | datetime | str = version if version is not None else timestamp  # type: ignore[assignment]
        return with_commit_retry(
            lambda: self.open().restore(target, commit_properties=_commit(metadata)), self.uri
        )

    def optimize(self, zorder_by: list[str] | None, metadata: dict[str, str]) -> dict[str, Any]:
        def attempt() -> dict[str, Any]:
            table = self.open()
            if zorder_by:
                return dict(table.optimize.z_order(zorder_by, commit_properties=_commit(metadata)))
            return dict(table.optimize.compact(commit_properties=_commit(metadata)))

        return with_commit_retry(attempt, self.uri)

    def vacuum(self, retention_hours: float | None, dry_run: bool, enforce_retention: bool) -> list[str]:
        if retention_hours is not None and retention_hours < 0:
            raise InvalidParameter(f"A vacuum retention of {retention_hours} hours is negative.")
        # deltalake takes whole hours; rounding up never deletes more than was asked for.
        hours = math.ceil(retention_hours) if retention_hours is not None else None
        return list(
            self.open().vacuum(
                retention_hours=hours,
                dry_run=dry_run,
                enforce_retention_duration=enforce_retention,
            )
        )

    def delete_files(self) -> None:
        """Remove the table's folder (managed tables are dropped with their data)."""
        if "://" not in self.uri or self.uri.startswith("file://"):
            shutil.rmtree(Path(self.uri.removeprefix("file://")), ignore_errors=True)
            return
        from pyarrow import fs as pafs

        filesystem, path = pafs.FileSystem.from_uri(self.uri)
        filesystem.delete_dir(path)


def _check_not_before_first_commit(
    table: DeltaTable, timestamp: datetime | str, storage_options: dict[str, str]
) -> None:
    """deltalake answers a time before the first commit with version 0; refuse it instead."""
    try:
        moment = datetime.fromisoformat(timestamp) if isinstance(timestamp, str) else timestamp
    except ValueError:  # a form deltalake parses but Python does not: nothing to compare
        return
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if table.version() != 0:
        return
    first = DeltaTable(table.table_uri, storage_options=storage_options or None).history()[-1]
    created = datetime.fromtimestamp(first["timestamp"] / 1000, tz=UTC)
    if moment < created:
        raise VersionNotFound(
            f"No version of the table at {timestamp}: it was created at {created.isoformat()}."
        )


def _check_merge_keys(data: pa.Table, keys: list[str], name: str) -> None:
    """Every source row needs a non-null key, and keys must be unique, or the upsert duplicates rows."""
    missing = [k for k in keys if data.schema.get_field_index(k) == -1]
    if missing:
        raise SchemaMismatch(f"Merge key(s) {', '.join(missing)} are not columns of '{name}'.")
    for key in keys:
        nulls = data.column(key).null_count
        if nulls:
            raise SchemaMismatch(
                f"Merge key '{key}' is null or missing in {nulls} row(s) of the data for '{name}'; "
                "every row needs a key."
            )
    counts = data.group_by(keys).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1))
    if repeated.num_rows:
        example = {k: repeated.column(k)[0].as_py() for k in keys}
        raise InvalidParameter(
            f"Data merged into '{name}' has {repeated.num_rows} key(s) appearing more than once "
            f"(e.g. {example}); keep one row per key."
        )


def _commit(metadata: dict[str, str]) -> CommitProperties:
    return CommitProperties(custom_metadata={META_PREFIX + k: v for k, v in metadata.items()})
