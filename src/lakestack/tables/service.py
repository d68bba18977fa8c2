"""`ws.tables`: governed Delta tables addressed as `catalog.schema.table`.

Every call is checked against the grants as the workspace's acting principal and audited.
A table lives at `<storage root>/<catalog>/<schema>/<table>`; change data feed is on by default.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake.exceptions import DeltaError

from lakestack.catalog.access import AccessControl
from lakestack.catalog.metastore import Metastore
from lakestack.catalog.names import Name
from lakestack.catalog.principals import Caller
from lakestack.catalog.privileges import Privilege
from lakestack.catalog.securables import SecurableInfo, SecurableStore, to_info
from lakestack.errors import Conflict, InvalidParameter, SchemaMismatch, SecurableExists
from lakestack.tables import observe
from lakestack.tables.arrow import conform, read_file, to_arrow
from lakestack.tables.delta import DeltaLocation, Filters, HistoryEntry, WriteMode
from lakestack.tables.expectations import Expectation, ExpectationResult, apply_expectations

Output = Literal["arrow", "pandas", "polars"]
EXPECTATIONS_PROPERTY = "lakestack.expectations"


@dataclass(frozen=True)
class TableInfo:
    name: str
    owner: str
    comment: str | None
    properties: dict[str, Any]
    location: str
    schema: pa.Schema
    partition_columns: list[str]
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    expectations: list[Expectation] = field(default_factory=list)


@dataclass(frozen=True)
class WriteResult:
    """What a write did: the new version, rows written, and expectation counts."""

    table: str
    version: int
    rows_written: int
    expectations: list[ExpectationResult]
    metrics: dict[str, Any] = field(default_factory=dict)


def convert(table: pa.Table, to: Output) -> Any:
    if to == "arrow":
        return table
    if to == "pandas":
        return table.to_pandas()
    if to == "polars":
        import polars as pl

        return pl.from_arrow(table)
    raise InvalidParameter(f"Unknown output {to!r}: use arrow, pandas or polars.")


def _stored_expectations(properties: dict[str, Any]) -> list[Expectation]:
    return [Expectation(**e) for e in json.loads(properties.get(EXPECTATIONS_PROPERTY, "[]"))]


def _storage_taken(name: Name, location: DeltaLocation) -> Conflict:
    return Conflict(
        f"Storage for '{name}' at {location.uri} already holds a Delta table: another writer is "
        "creating it, or a crash left it unregistered. Retry, or move that folder away first."
    )


class Tables:
    def __init__(
        self,
        metastore: Metastore,
        securables: SecurableStore,
        access: AccessControl,
        caller: Caller,
        storage_root: str,
        storage_options: dict[str, str],
    ) -> None:
        self._metastore = metastore
        self._securables = securables
        self._access = access
        self._caller = caller
        self._root = storage_root.rstrip("/")
        self._options = storage_options

    # --- helpers -------------------------------------------------------------------------

    def _location(self, uri: str | None) -> DeltaLocation:
        assert uri is not None, "every registered table has a storage location"
        return DeltaLocation(uri, self._options)

    def _check(
        self, action: str, name: str, privilege: Privilege, **detail: Any
    ) -> tuple[Name, SecurableInfo]:
        parsed = Name.parse(name, 3)
        with self._metastore.session() as session:
            row = self._access.check(
                session, self._caller, action, "table", parsed, privilege, detail or None
            )
            return parsed, to_info(row)

    @property
    def storage_options(self) -> dict[str, str]:
        """The storage options (credentials, endpoint) every Delta table here is opened with."""
        return self._options

    def check_access(self, name: str, privilege: Privilege, action: str) -> str:
        """Require `privilege` on table `name` as the acting principal (audited as `action`).

        For areas that keep data derived from a table elsewhere (the online store) and govern
        it by the table's grants. Returns the normalised name.
        """
        parsed, _ = self._check(action, name, privilege)
        return str(parsed)

    def _emit(self, mode: str, name: str, location: DeltaLocation, version: int) -> None:
        """Tell listeners (tracking, lineage) which version was touched; free when nobody listens."""
        if observe.active():
            access = observe.TableAccess(mode, name, version, location.uri, self._caller.name)  # type: ignore[arg-type]
            observe.emit(access)

    def _commit_metadata(self, results: list[ExpectationResult]) -> dict[str, str]:
        metadata = {"principal": self._caller.name}
        if results:
            metadata["expectations"] = json.dumps([r.to_dict() for r in results])
        return metadata

    # --- lifecycle -----------------------------------------------------------------------

    def create(
        self,
        name: str,
        schema: pa.Schema | None = None,
        data: Any = None,
        partition_by: list[str] | None = None,
        comment: str | None = None,
        properties: dict[str, str] | None = None,
        expectations: list[Expectation] | None = None,
        change_data_feed: bool = True,
        exist_ok: bool = False,
    ) -> TableInfo:
        """Create a Delta table from a schema, or from data (written as version 0).

        Needs USE_CATALOG, USE_SCHEMA and CREATE_TABLE on the schema. `expectations` are
        stored with the table and checked on every later write as well.
        """
        parsed = Name.parse(name, 3)
        if schema is None and data is None:
            raise InvalidParameter(f"Creating '{parsed}' needs a schema or data to take it from.")
        rows = to_arrow(data) if data is not None else None
        arrow_schema = rows.schema if rows is not None else schema
        assert arrow_schema is not None
        stored = list(expectations or [])
        props = dict(properties or {})
        if stored:
            props[EXPECTATIONS_PROPERTY] = json.dumps([e.__dict__ for e in stored])
        delta_config = {k: v for k, v in props.items() if k.startswith("delta.")}
        if change_data_feed:
            delta_config.setdefault("delta.enableChangeDataFeed", "true")
        location = DeltaLocation(
            f"{self._root}/{parsed.catalog}/{parsed.schema}/{parsed.object}", self._options
        )
        with self._metastore.session() as session:
            self._access.check(
                session,
                self._caller,
                "tables.create",
                "schema",
                parsed.parent,
                Privilege.CREATE_TABLE,
                {"table": str(parsed)},
            )
            taken = self._securables.find(session, "table", parsed) is not None
        if taken and exist_ok:
            return self.get(str(parsed))
        if taken:
            raise SecurableExists("table", str(parsed), "Write to it, or drop it first.")
        results: list[ExpectationResult] = []
        if rows is not None:
            rows, results = apply_expectations(rows, stored, str(parsed))
        # Delta first, metastore second: the metastore transaction stays short (SQLite locks the
        # whole file while it is open), and a table is only registered once its data exists.
        if location.exists():
            raise _storage_taken(parsed, location)
        try:
            location.create(
                arrow_schema, partition_by or [], comment, delta_config, self._commit_metadata(results), rows
            )
        except DeltaError:
            if location.exists():  # another writer created it between our check and our commit
                raise _storage_taken(parsed, location) from None
            raise
        try:
            with self._metastore.session() as session:
                self._securables.create(
                    session, "table", parsed, self._caller.name, comment, props, storage_location=location.uri
                )
        except BaseException:
            location.delete_files()  # ours: we just created it and could not register it
            raise
        self._emit("write", str(parsed), location, 0)
        return self.get(str(parsed))

    def exists(self, name: str) -> bool:
        """Whether the table exists; asking needs USE_CATALOG and USE_SCHEMA on its schema."""
        parsed = Name.parse(name, 3)
        with self._metastore.session() as session:
            return self._access.exists(session, self._caller, "tables.exists", "table", parsed)

    def get(self, name: str) -> TableInfo:
        """Describe a table: owner, location, schema, partitioning, current version. Needs SELECT."""
        parsed, info = self._check("tables.get", name, Privilege.SELECT)
        table = self._location(info.storage_location).open()
        return TableInfo(
            name=str(parsed),
            owner=info.owner,
            comment=info.comment,
            properties={k: v for k, v in info.properties.items() if k != EXPECTATIONS_PROPERTY},
            location=info.storage_location or "",
            schema=pa.schema(table.schema().to_arrow()),
            partition_columns=list(table.metadata().partition_columns),
            version=table.version(),
            created_at=info.created_at,
            created_by=info.created_by,
            updated_at=info.updated_at,
            expectations=_stored_expectations(info.properties),
        )

    def list(self, schema: str) -> list[SecurableInfo]:
        """Tables of `schema` the caller can see."""
        parsed = Name.parse(schema, 2)
        return self._access.list_visible(self._caller, "tables.list", "schema", parsed, "table")

    def drop(self, name: str) -> SecurableInfo:
        """Drop the table and delete its data. Needs MANAGE (or ownership)."""
        parsed = Name.parse(name, 3)
        with self._metastore.session() as session:
            row = self._access.check(session, self._caller, "tables.drop", "table", parsed, Privilege.MANAGE)
            info = to_info(row)
            session.delete(row)
        self.delete_data([info])
        return info

    def delete_data(self, dropped: builtins.list[SecurableInfo]) -> None:
        """Delete the storage of dropped tables (called after catalogs/schemas drop with cascade)."""
        for info in dropped:
            if info.kind == "table" and info.storage_location:
                self._location(info.storage_location).delete_files()

    # --- writing -------------------------------------------------------------------------

    def _prepare(
        self,
        action: str,
        name: str,
        data: Any,
        expectations: builtins.list[Expectation] | None,
        evolve_schema: bool,
    ) -> tuple[DeltaLocation, pa.Table, builtins.list[ExpectationResult]]:
        parsed, info = self._check(action, name, Privilege.MODIFY)
        location = self._location(info.storage_location)
        # Fit the schema first so expectations see every column and mismatches fail early.
        rows, _ = conform(to_arrow(data), location.schema(), str(parsed), evolve_schema)
        checks = _stored_expectations(info.properties) + list(expectations or [])
        rows, results = apply_expectations(rows, checks, str(parsed))
        return location, rows, results

    def write(
        self,
        name: str,
        data: Any,
        mode: WriteMode = "append",
        expectations: builtins.list[Expectation] | None = None,
        evolve_schema: bool = False,
    ) -> WriteResult:
        """Append or overwrite rows. Needs MODIFY.

        Columns are matched by name; missing nullable columns become nulls; new columns are an
        error unless `evolve_schema`. A failed write leaves the table exactly as it was.
        """
        if mode not in ("append", "overwrite"):
            raise InvalidParameter(f"Unknown write mode {mode!r}: use append or overwrite (or merge()).")
        target = str(Name.parse(name, 3))
        location, rows, results = self._prepare(
            f"tables.write.{mode}", target, data, expectations, evolve_schema
        )
        version = location.write(rows, mode, target, evolve_schema, self._commit_metadata(results))
        self._emit("write", target, location, version)
        return WriteResult(target, version, rows.num_rows, results)

    def merge(
        self,
        name: str,
        data: Any,
        keys: builtins.list[str],
        delete_condition: str | None = None,
        expectations: builtins.list[Expectation] | None = None,
        evolve_schema: bool = False,
    ) -> WriteResult:
        """Upsert rows on `keys`: update matches, insert the rest. Needs MODIFY.

        `delete_condition` (SQL over `s` = source and `t` = target, e.g. ``s.deleted``) deletes
        matched rows instead of updating them, and keeps unmatched ones from being inserted.
        Concurrent merges are retried on conflict.
        """
        if not keys:
            raise InvalidParameter(f"Merging into '{name}' needs at least one key column.")
        target = str(Name.parse(name, 3))
        incoming = to_arrow(data)
        location, rows, results = self._prepare("tables.merge", target, incoming, expectations, evolve_schema)
        metadata = self._commit_metadata(results)
        metrics = location.merge(
            rows, keys, target, delete_condition, evolve_schema, metadata, incoming.schema.names
        )
        version = int(metrics.pop("version"))
        self._emit("write", target, location, version)
        return WriteResult(target, version, rows.num_rows, results, metrics)

    def import_file(
        self,
        name: str,
        path: str | Path,
        file_format: str | None = None,
        mode: WriteMode = "append",
        partition_by: builtins.list[str] | None = None,
        evolve_schema: bool = False,
    ) -> WriteResult:
        """Load a CSV, Parquet or JSON-lines file into a table, creating the table if needed."""
        rows = read_file(Path(path), file_format)
        if not self.exists(name):
            info = self.create(name, data=rows, partition_by=partition_by)
            return WriteResult(info.name, info.version, rows.num_rows, [])
        return self.write(name, rows, mode, evolve_schema=evolve_schema)

    def set_expectations(self, name: str, expectations: builtins.list[Expectation]) -> None:
        """Replace the expectations checked on every write to the table. Needs MANAGE."""
        parsed = Name.parse(name, 3)
        with self._metastore.session() as session:
            row = self._access.check(
                session, self._caller, "tables.set_expectations", "table", parsed, Privilege.MANAGE
            )
            props = dict(row.properties or {})
            props[EXPECTATIONS_PROPERTY] = json.dumps([e.__dict__ for e in expectations])
            row.properties = props
            self._securables.touch(row, self._caller.name)

    # --- reading -------------------------------------------------------------------------

    def read(
        self,
        name: str,
        columns: builtins.list[str] | None = None,
        filters: Filters | None = None,
        version: int | None = None,
        timestamp: datetime | str | None = None,
        limit: int | None = None,
        to: Output = "arrow",
    ) -> Any:
        """Read rows (optionally some columns, filtered, at a version or timestamp). Needs SELECT.

        `filters` are ``[("col", "op", value), ...]`` (AND-ed; ops = != < <= > >= in not in),
        pushed down into the Delta scan. `to` picks arrow, pandas or polars output.
        """
        parsed, info = self._check("tables.read", name, Privilege.SELECT, version=version)
        location = self._location(info.storage_location)
        source = location.open(version, timestamp)  # opened once: read from it, report its version
        try:
            table = location.read(source, columns, filters, limit)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, TypeError) as exc:
            raise InvalidParameter(f"Cannot read '{name}' with filters {filters!r}: {exc}") from None
        self._emit("read", str(parsed), location, source.version())
        return convert(table, to)

    def dataset(self, name: Name, version: int | None = None) -> pads.Dataset:
        """An Arrow dataset over the table, for engines that push filters down (SQL). Needs SELECT."""
        _, info = self._check("tables.scan", str(name), Privilege.SELECT, version=version)
        location = self._location(info.storage_location)
        table = location.open(version)
        self._emit("read", str(name), location, table.version())
        return location.dataset(table)

    def history(self, name: str, limit: int | None = None) -> builtins.list[HistoryEntry]:
        """Versions newest first: operation, who, metrics and expectation counts. Needs SELECT."""
        _, info = self._check("tables.history", name, Privilege.SELECT)
        return self._location(info.storage_location).history(limit)

    def changes(self, name: str, starting_version: int = 0, ending_version: int | None = None) -> pa.Table:
        """The change data feed between two versions (`_change_type`, `_commit_version`). Needs SELECT."""
        _, info = self._check("tables.changes", name, Privilege.SELECT)
        try:
            return self._location(info.storage_location).changes(starting_version, ending_version)
        except DeltaError as exc:
            raise InvalidParameter(
                f"No change data for '{name}' from version {starting_version}: {exc}"
            ) from None

    # --- maintenance ---------------------------------------------------------------------

    def restore(self, name: str, version: int | None = None, timestamp: datetime | str | None = None) -> int:
        """Make an older version current again (as a new version); returns that version. Needs MODIFY."""
        if (version is None) == (timestamp is None):
            raise InvalidParameter("Restore needs exactly one of version or timestamp.")
        _, info = self._check("tables.restore", name, Privilege.MODIFY, version=version)
        location = self._location(info.storage_location)
        try:
            location.restore(version, timestamp, {"principal": self._caller.name})
        except DeltaError as exc:
            raise InvalidParameter(f"Cannot restore '{name}': {str(exc).splitlines()[0]}") from None
        return location.open().version()

    def optimize(self, name: str, zorder_by: builtins.list[str] | None = None) -> dict[str, Any]:
        """Compact small files (and Z-order by columns when given). Needs MODIFY."""
        _, info = self._check("tables.optimize", name, Privilege.MODIFY)
        location = self._location(info.storage_location)
        if zorder_by:
            unknown = [c for c in zorder_by if location.schema().get_field_index(c) == -1]
            if unknown:
                raise SchemaMismatch(f"Cannot Z-order '{name}' by unknown column(s) {', '.join(unknown)}.")
        return location.optimize(zorder_by, {"principal": self._caller.name})

    def vacuum(
        self,
        name: str,
        retention_hours: float | None = None,
        dry_run: bool = False,
        enforce_retention: bool = True,
    ) -> builtins.list[str]:
        """Delete data files no version within the retention (default 7 days) needs. Needs MODIFY."""
        _, info = self._check("tables.vacuum", name, Privilege.MODIFY, dry_run=dry_run)
        try:
            return self._location(info.storage_location).vacuum(retention_hours, dry_run, enforce_retention)
        except DeltaError as exc:
            raise InvalidParameter(
                f"Vacuum of '{name}' refused: {str(exc).splitlines()[0]} "
                "(pass enforce_retention=False / --no-enforce-retention to go below the retention)."
            ) from None
