"""Reading and writing governed Delta tables: create, write, read, time travel, maintenance, files."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lakestack import Workspace
from lakestack.errors import (
    BadInputData,
    InvalidParameter,
    SchemaMismatch,
    SecurableExists,
    SecurableNotFound,
    VersionNotFound,
)

TRIPS = "dev.raw.trips"
TRIPS_SCHEMA = pa.schema([("id", pa.int64()), ("city", pa.string()), ("fare", pa.float64())])


@pytest.fixture
def ws(sqlite_workspace: Workspace) -> Workspace:
    sqlite_workspace.schemas.create("dev.raw")
    return sqlite_workspace


@pytest.fixture
def trips(ws: Workspace) -> Workspace:
    """dev.raw.trips at version 0 with three rows."""
    ws.tables.create(
        TRIPS, data=pa.table({"id": [1, 2, 3], "city": ["ams", "ber", "ams"], "fare": [10.0, 20.0, 30.0]})
    )
    return ws


def rows(ws: Workspace, name: str = TRIPS, **read: Any) -> list[dict[str, Any]]:
    return sorted(ws.tables.read(name, **read).to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def snapshot(ws: Workspace, name: str = TRIPS) -> tuple[int, pa.Schema, list[dict[str, Any]]]:
    """Everything a failed operation must leave alone: version, schema and rows."""
    info = ws.tables.get(name)
    return info.version, info.schema, rows(ws, name)


# --- create ------------------------------------------------------------------------------


def test_create_from_schema_is_an_empty_version_0(ws: Workspace) -> None:
    info = ws.tables.create(TRIPS, schema=TRIPS_SCHEMA)

    assert info.version == 0
    assert info.schema.names == ["id", "city", "fare"]
    assert info.schema.field("fare").type == pa.float64()
    assert info.owner == "admin"
    assert info.location == str(ws.folder / "tables" / "dev" / "raw" / "trips")
    assert ws.tables.read(TRIPS).num_rows == 0
    [entry] = ws.tables.history(TRIPS)
    assert (entry.version, entry.operation, entry.principal) == (0, "CREATE TABLE", "admin")


DATA = {"id": [1, 2], "city": ["ams", "ber"], "fare": [1.5, 2.5]}


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: pa.table(DATA), id="arrow"),
        pytest.param(lambda: pd.DataFrame(DATA), id="pandas"),
        pytest.param(lambda: pl.DataFrame(DATA), id="polars"),
        pytest.param(
            lambda: [dict(zip(DATA, values, strict=True)) for values in zip(*DATA.values(), strict=True)],
            id="dicts",
        ),
    ],
)
def test_create_from_data_writes_it_as_version_0(ws: Workspace, make: Any) -> None:
    info = ws.tables.create(TRIPS, data=make())

    assert info.version == 0
    assert info.schema == TRIPS_SCHEMA
    assert rows(ws) == [{"id": 1, "city": "ams", "fare": 1.5}, {"id": 2, "city": "ber", "fare": 2.5}]
    assert rows(ws, version=0) == rows(ws)
    assert [h.version for h in ws.tables.history(TRIPS)] == [0]


def test_create_with_partitions_lays_out_partition_folders(ws: Workspace) -> None:
    info = ws.tables.create(
        TRIPS,
        data=pa.table({"id": [1, 2, 3], "city": ["ams", "ber", "ams"], "fare": [1.0, 2.0, 3.0]}),
        partition_by=["city"],
    )

    assert info.partition_columns == ["city"]
    folders = sorted(p.name for p in Path(info.location).iterdir() if p.is_dir() and p.name != "_delta_log")
    assert folders == ["city=ams", "city=ber"]
    assert rows(ws, filters=[("city", "=", "ams")]) == [
        {"id": 1, "city": "ams", "fare": 1.0},
        {"id": 3, "city": "ams", "fare": 3.0},
    ]


def test_create_partitioned_by_an_unknown_column_leaves_nothing_behind(ws: Workspace) -> None:
    with pytest.raises(SchemaMismatch, match="country"):
        ws.tables.create(TRIPS, data=pa.table(DATA), partition_by=["country"])

    assert not ws.tables.exists(TRIPS)
    assert not (ws.folder / "tables" / "dev" / "raw" / "trips").exists()
    ws.tables.create(TRIPS, data=pa.table(DATA))  # the name is still free
    assert rows(ws)[0]["id"] == 1


def test_comment_and_properties_are_kept(ws: Workspace) -> None:
    ws.tables.create(TRIPS, schema=TRIPS_SCHEMA, comment="Taxi trips", properties={"team": "mobility"})

    info = ws.tables.get(TRIPS)
    assert info.comment == "Taxi trips"
    assert info.properties == {"team": "mobility"}
    assert DeltaTable(info.location).metadata().description == "Taxi trips"


def test_change_data_feed_is_on_by_default(trips: Workspace) -> None:
    ws = trips
    location = ws.tables.get(TRIPS).location
    assert DeltaTable(location).metadata().configuration["delta.enableChangeDataFeed"] == "true"

    ws.tables.write(TRIPS, pa.table({"id": [4], "city": ["cph"], "fare": [40.0]}))
    ws.tables.merge(TRIPS, pa.table({"id": [1], "city": ["ams"], "fare": [11.0]}), keys=["id"])

    changes = ws.tables.changes(TRIPS)
    seen = sorted((c["_commit_version"], c["_change_type"], c["id"], c["fare"]) for c in changes.to_pylist())
    assert seen == [
        (0, "insert", 1, 10.0),
        (0, "insert", 2, 20.0),
        (0, "insert", 3, 30.0),
        (1, "insert", 4, 40.0),
        (2, "update_postimage", 1, 11.0),
        (2, "update_preimage", 1, 10.0),
    ]
    later = ws.tables.changes(TRIPS, starting_version=2).to_pylist()
    assert {c["_commit_version"] for c in later} == {2}
    only_v1 = ws.tables.changes(TRIPS, starting_version=1, ending_version=1).to_pylist()
    assert [(c["id"], c["_change_type"]) for c in only_v1] == [(4, "insert")]


def test_change_data_feed_can_be_turned_off(ws: Workspace) -> None:
    info = ws.tables.create(TRIPS, data=pa.table(DATA), change_data_feed=False)

    assert "delta.enableChangeDataFeed" not in DeltaTable(info.location).metadata().configuration
    with pytest.raises(InvalidParameter, match="change data"):
        ws.tables.changes(TRIPS)


def test_create_twice_is_refused_unless_exist_ok(trips: Workspace) -> None:
    before = snapshot(trips)
    with pytest.raises(SecurableExists):
        trips.tables.create(TRIPS, data=pa.table({"id": [9], "city": ["x"], "fare": [0.0]}))
    assert snapshot(trips) == before

    info = trips.tables.create(TRIPS, data=pa.table({"id": [9], "city": ["x"], "fare": [0.0]}), exist_ok=True)
    assert info.version == 0
    assert snapshot(trips) == before


def test_create_needs_a_schema_or_data(ws: Workspace) -> None:
    with pytest.raises(InvalidParameter, match="schema or data"):
        ws.tables.create(TRIPS)
    assert not ws.tables.exists(TRIPS)


# --- writing -----------------------------------------------------------------------------


def test_append_adds_rows_as_a_new_version(trips: Workspace) -> None:
    result = trips.tables.write(TRIPS, pd.DataFrame({"id": [4], "city": ["cph"], "fare": [40.0]}))

    assert (result.table, result.version, result.rows_written) == (TRIPS, 1, 1)
    assert [r["id"] for r in rows(trips)] == [1, 2, 3, 4]
    assert [r["id"] for r in rows(trips, version=0)] == [1, 2, 3]


def test_overwrite_replaces_rows_and_keeps_history(trips: Workspace) -> None:
    result = trips.tables.write(
        TRIPS, pl.DataFrame({"id": [7], "city": ["osl"], "fare": [7.0]}), mode="overwrite"
    )

    assert result.version == 1
    assert rows(trips) == [{"id": 7, "city": "osl", "fare": 7.0}]
    assert len(rows(trips, version=0)) == 3


def test_unknown_write_mode_is_refused(trips: Workspace) -> None:
    before = snapshot(trips)
    with pytest.raises(InvalidParameter, match="upsert"):
        trips.tables.write(TRIPS, pa.table(DATA), mode="upsert")  # type: ignore[arg-type]
    assert snapshot(trips) == before


def test_unsupported_data_is_bad_input(trips: Workspace) -> None:
    before = snapshot(trips)
    with pytest.raises(BadInputData, match="set"):
        trips.tables.write(TRIPS, {1, 2, 3})
    assert snapshot(trips) == before


# --- schema ------------------------------------------------------------------------------


def test_missing_nullable_column_becomes_null(trips: Workspace) -> None:
    trips.tables.write(TRIPS, pa.table({"fare": [5.0], "id": [5]}))

    assert {"id": 5, "city": None, "fare": 5.0} in rows(trips)


def test_safe_cast_is_applied(trips: Workspace) -> None:
    trips.tables.write(
        TRIPS, pa.table({"id": pa.array([6], pa.int32()), "city": ["x"], "fare": pa.array([6], pa.int64())})
    )

    assert {"id": 6, "city": "x", "fare": 6.0} in rows(trips)
    assert trips.tables.get(TRIPS).schema == TRIPS_SCHEMA


def test_new_column_is_schema_mismatch_without_evolve(trips: Workspace) -> None:
    before = snapshot(trips)
    with pytest.raises(SchemaMismatch, match="tip") as caught:
        trips.tables.write(TRIPS, pa.table({"id": [4], "city": ["x"], "fare": [1.0], "tip": [0.5]}))
    assert "evolve_schema" in caught.value.message
    assert snapshot(trips) == before


def test_new_column_is_added_with_evolve_schema(trips: Workspace) -> None:
    result = trips.tables.write(
        TRIPS, pa.table({"id": [4], "city": ["x"], "fare": [1.0], "tip": [0.5]}), evolve_schema=True
    )

    assert result.version == 1
    assert trips.tables.get(TRIPS).schema.names == ["id", "city", "fare", "tip"]
    by_id = {r["id"]: r for r in rows(trips)}
    assert by_id[4]["tip"] == 0.5
    assert by_id[1]["tip"] is None
    assert "tip" not in trips.tables.read(TRIPS, version=0).schema.names


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("id", pa.array([1.5])),
        ("id", pa.array(["abc"])),
        ("fare", pa.array(["cheap"])),
        ("id", pa.array([2**63], pa.uint64())),
    ],
    ids=["float-to-int", "text-to-int", "text-to-float", "uint64-to-int64"],
)
def test_unsafe_cast_is_schema_mismatch_naming_the_column(
    trips: Workspace, column: str, values: pa.Array
) -> None:
    data = {"id": pa.array([4]), "city": pa.array(["x"]), "fare": pa.array([1.0])}
    data[column] = values
    before = snapshot(trips)
    with pytest.raises(SchemaMismatch) as caught:
        trips.tables.write(TRIPS, pa.table(data))
    assert f"'{column}'" in caught.value.message
    assert "\n" not in caught.value.message
    assert snapshot(trips) == before


def test_missing_required_column_is_schema_mismatch(ws: Workspace) -> None:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("city", pa.string())])
    ws.tables.create(TRIPS, schema=schema)
    before = snapshot(ws)

    with pytest.raises(SchemaMismatch, match="'id'"):
        ws.tables.write(TRIPS, pa.table({"city": ["ams"]}))
    assert snapshot(ws) == before


# --- reading -----------------------------------------------------------------------------


def test_read_columns_filters_and_limit(trips: Workspace) -> None:
    ws = trips
    ws.tables.write(TRIPS, pa.table({"id": [4, 5], "city": ["ber", "cph"], "fare": [40.0, 50.0]}))

    assert ws.tables.read(TRIPS, columns=["fare", "id"]).schema.names == ["fare", "id"]
    assert rows(ws, filters=[("fare", ">=", 20.0), ("city", "in", ["ber", "cph"])]) == [
        {"id": 2, "city": "ber", "fare": 20.0},
        {"id": 4, "city": "ber", "fare": 40.0},
        {"id": 5, "city": "cph", "fare": 50.0},
    ]
    assert rows(ws, filters=[("city", "not in", ["ams", "ber"])]) == [{"id": 5, "city": "cph", "fare": 50.0}]
    assert ws.tables.read(TRIPS, limit=2).num_rows == 2
    limited = ws.tables.read(TRIPS, filters=[("city", "=", "ams")], columns=["id"], limit=10)
    assert sorted(limited.column("id").to_pylist()) == [1, 3]
    assert ws.tables.read(TRIPS, filters=[("id", ">", 100)]).num_rows == 0


def test_read_with_unknown_column_or_bad_filter_is_invalid(trips: Workspace) -> None:
    with pytest.raises(InvalidParameter, match="distance"):
        trips.tables.read(TRIPS, columns=["distance"])
    with pytest.raises(InvalidParameter):
        trips.tables.read(TRIPS, filters=[("distance", ">", 1)])
    with pytest.raises(InvalidParameter):
        trips.tables.read(TRIPS, filters=[("id", "~", 1)])


def test_read_converts_to_pandas_and_polars(trips: Workspace) -> None:
    frame = trips.tables.read(TRIPS, to="pandas")
    assert isinstance(frame, pd.DataFrame)
    assert sorted(frame["id"].tolist()) == [1, 2, 3]

    polars_frame = trips.tables.read(TRIPS, to="polars")
    assert isinstance(polars_frame, pl.DataFrame)
    assert polars_frame.columns == ["id", "city", "fare"]
    assert polars_frame["fare"].sum() == 60.0

    assert isinstance(trips.tables.read(TRIPS), pa.Table)
    with pytest.raises(InvalidParameter, match="csv"):
        trips.tables.read(TRIPS, to="csv")  # type: ignore[arg-type]


def test_time_travel_by_version(trips: Workspace) -> None:
    trips.tables.write(TRIPS, pa.table({"id": [4], "city": ["x"], "fare": [1.0]}))
    trips.tables.write(TRIPS, pa.table({"id": [5], "city": ["y"], "fare": [2.0]}), mode="overwrite")

    assert [r["id"] for r in rows(trips, version=0)] == [1, 2, 3]
    assert [r["id"] for r in rows(trips, version=1)] == [1, 2, 3, 4]
    assert [r["id"] for r in rows(trips, version=2)] == [5]
    with pytest.raises(VersionNotFound, match="Version 9"):
        trips.tables.read(TRIPS, version=9)


def test_time_travel_by_timestamp(trips: Workspace) -> None:
    time.sleep(0.1)
    trips.tables.write(TRIPS, pa.table({"id": [4], "city": ["x"], "fare": [1.0]}))
    time.sleep(0.1)
    trips.tables.write(TRIPS, pa.table({"id": [5], "city": ["y"], "fare": [2.0]}))
    v2, v1, v0 = (h.timestamp for h in trips.tables.history(TRIPS))
    between_0_and_1 = v0 + (v1 - v0) / 2
    between_1_and_2 = v1 + (v2 - v1) / 2

    assert [r["id"] for r in rows(trips, timestamp=between_0_and_1)] == [1, 2, 3]
    assert [r["id"] for r in rows(trips, timestamp=between_1_and_2.isoformat())] == [1, 2, 3, 4]
    assert [r["id"] for r in rows(trips, timestamp=datetime.now(UTC) + timedelta(hours=1))] == [1, 2, 3, 4, 5]
    with pytest.raises(InvalidParameter):
        trips.tables.read(TRIPS, timestamp="not a time")


def test_time_travel_to_before_the_table_existed_is_refused(trips: Workspace) -> None:
    created = trips.tables.history(TRIPS)[-1].timestamp
    with pytest.raises(VersionNotFound, match="created at"):
        trips.tables.read(TRIPS, timestamp=created - timedelta(days=1))
    with pytest.raises(VersionNotFound, match="created at"):
        trips.tables.read(TRIPS, timestamp="2000-01-01T00:00:00Z")
    assert len(rows(trips, timestamp=created)) == 3


def test_time_travel_needs_one_valid_target(trips: Workspace) -> None:
    with pytest.raises(InvalidParameter, match="not both"):
        trips.tables.read(TRIPS, version=0, timestamp=datetime.now(UTC))
    with pytest.raises(VersionNotFound, match="Version -1"):
        trips.tables.read(TRIPS, version=-1)


def test_history_lists_versions_operations_and_principals(workspace: Workspace) -> None:
    ws = workspace
    ws.schemas.create("dev.raw")
    ws.tables.create(TRIPS, schema=TRIPS_SCHEMA)
    ws.principals.create("alice")
    ws.grants.grant("USE_CATALOG", "catalog", "dev", "alice")
    ws.grants.grant("USE_SCHEMA", "schema", "dev.raw", "alice")
    ws.grants.grant("MODIFY", "table", TRIPS, "alice")
    alice = ws.as_principal("alice")

    alice.tables.write(TRIPS, pa.table({"id": [1], "city": ["ams"], "fare": [1.0]}))
    ws.tables.merge(TRIPS, pa.table({"id": [1], "city": ["ams"], "fare": [2.0]}), keys=["id"])
    ws.tables.write(TRIPS, pa.table({"id": [2], "city": ["ber"], "fare": [3.0]}), mode="overwrite")

    history = ws.tables.history(TRIPS)
    assert [(h.version, h.operation, h.principal) for h in history] == [
        (3, "WRITE", "admin"),
        (2, "MERGE", "admin"),
        (1, "WRITE", "alice"),
        (0, "CREATE TABLE", "admin"),
    ]
    assert history[0].parameters["mode"] == "Overwrite"
    assert history[2].parameters["mode"] == "Append"
    assert history[2].metrics["num_added_rows"] == 1
    assert [h.timestamp for h in history] == sorted((h.timestamp for h in history), reverse=True)
    assert [h.version for h in ws.tables.history(TRIPS, limit=2)] == [3, 2]


def test_restore_makes_an_old_version_current_as_a_new_version(trips: Workspace) -> None:
    original = rows(trips)
    trips.tables.write(TRIPS, pa.table({"id": [9], "city": ["z"], "fare": [9.0]}), mode="overwrite")

    version = trips.tables.restore(TRIPS, version=0)

    assert version == 2
    assert trips.tables.get(TRIPS).version == 2
    assert rows(trips) == original
    assert trips.tables.history(TRIPS)[0].operation == "RESTORE"
    assert [r["id"] for r in rows(trips, version=1)] == [9]


def test_restore_by_timestamp(trips: Workspace) -> None:
    time.sleep(0.1)
    trips.tables.write(TRIPS, pa.table({"id": [9], "city": ["z"], "fare": [9.0]}))
    v1, v0 = (h.timestamp for h in trips.tables.history(TRIPS))

    assert trips.tables.restore(TRIPS, timestamp=v0 + (v1 - v0) / 2) == 2
    assert [r["id"] for r in rows(trips)] == [1, 2, 3]


def test_restore_needs_one_existing_target(trips: Workspace) -> None:
    before = snapshot(trips)
    with pytest.raises(InvalidParameter, match="exactly one"):
        trips.tables.restore(TRIPS)
    with pytest.raises(InvalidParameter, match="exactly one"):
        trips.tables.restore(TRIPS, version=0, timestamp="2024-01-01T00:00:00Z")
    with pytest.raises(InvalidParameter):
        trips.tables.restore(TRIPS, version=5)
    assert snapshot(trips) == before


# --- maintenance -------------------------------------------------------------------------


def data_files(location: str) -> set[str]:
    root = Path(location)
    return {str(p.relative_to(root)) for p in root.rglob("*.parquet") if "_delta_log" not in p.parts}


def test_optimize_compacts_small_files(trips: Workspace) -> None:
    ws = trips
    for i in range(4):
        ws.tables.write(TRIPS, pa.table({"id": [10 + i], "city": ["x"], "fare": [float(i)]}))
    live = DeltaTable(ws.tables.get(TRIPS).location).file_uris()
    assert len(live) == 5
    before = rows(ws)

    metrics = ws.tables.optimize(TRIPS)

    assert metrics["numFilesRemoved"] == 5
    assert metrics["plannerStrategy"] != "zOrder"
    assert metrics["numFilesAdded"] == 1
    assert len(DeltaTable(ws.tables.get(TRIPS).location).file_uris()) == 1
    assert rows(ws) == before
    assert ws.tables.get(TRIPS).version == 5
    assert ws.tables.history(TRIPS)[0].operation == "OPTIMIZE"
    assert ws.tables.history(TRIPS)[0].principal == "admin"


def test_optimize_z_order(trips: Workspace) -> None:
    ws = trips
    ws.tables.write(TRIPS, pa.table({"id": [4, 5], "city": ["x", "y"], "fare": [4.0, 5.0]}))
    before = rows(ws)

    metrics = ws.tables.optimize(TRIPS, zorder_by=["city", "fare"])

    assert metrics["numFilesRemoved"] == 2
    assert metrics["numFilesAdded"] >= 1
    assert rows(ws) == before
    latest = ws.tables.history(TRIPS)[0]
    assert latest.operation == "OPTIMIZE"
    assert metrics["plannerStrategy"] == "zOrder"


def test_optimize_z_order_by_unknown_column_is_refused(trips: Workspace) -> None:
    before = snapshot(trips)
    with pytest.raises(SchemaMismatch, match="distance"):
        trips.tables.optimize(TRIPS, zorder_by=["distance"])
    assert snapshot(trips) == before


def test_vacuum_dry_run_lists_unreferenced_files_without_deleting(trips: Workspace) -> None:
    ws = trips
    location = ws.tables.get(TRIPS).location
    old_files = data_files(location)
    ws.tables.write(TRIPS, pa.table({"id": [9], "city": ["z"], "fare": [9.0]}), mode="overwrite")

    # Within the default 7-day retention nothing may go.
    assert ws.tables.vacuum(TRIPS, dry_run=True) == []
    listed = ws.tables.vacuum(TRIPS, retention_hours=0, dry_run=True, enforce_retention=False)

    assert {Path(f).as_posix() for f in listed} == old_files
    assert data_files(location) >= old_files  # nothing deleted
    assert len(rows(ws, version=0)) == 3


def test_vacuum_deletes_unreferenced_files(trips: Workspace) -> None:
    ws = trips
    location = ws.tables.get(TRIPS).location
    old_files = data_files(location)
    ws.tables.write(TRIPS, pa.table({"id": [9], "city": ["z"], "fare": [9.0]}), mode="overwrite")
    current = data_files(location) - old_files

    deleted = ws.tables.vacuum(TRIPS, retention_hours=0, enforce_retention=False)

    assert {Path(f).as_posix() for f in deleted} == old_files
    assert data_files(location) == current
    assert rows(ws) == [{"id": 9, "city": "z", "fare": 9.0}]


def test_vacuum_below_retention_is_refused_when_enforced(trips: Workspace) -> None:
    ws = trips
    location = ws.tables.get(TRIPS).location
    ws.tables.write(TRIPS, pa.table({"id": [9], "city": ["z"], "fare": [9.0]}), mode="overwrite")
    files = data_files(location)
    before = snapshot(ws)

    with pytest.raises(InvalidParameter, match="retention") as caught:
        ws.tables.vacuum(TRIPS, retention_hours=0)
    assert "enforce_retention=False" in caught.value.message
    assert data_files(location) == files
    assert snapshot(ws) == before
    assert len(rows(ws, version=0)) == 3


def test_vacuum_retention_may_be_fractional_but_not_negative(trips: Workspace) -> None:
    ws = trips
    location = ws.tables.get(TRIPS).location
    ws.tables.write(TRIPS, pa.table({"id": [9], "city": ["z"], "fare": [9.0]}), mode="overwrite")
    files = data_files(location)

    # The replaced file is seconds old, so a half-hour retention keeps it.
    assert ws.tables.vacuum(TRIPS, retention_hours=0.5, enforce_retention=False) == []
    with pytest.raises(InvalidParameter, match="negative"):
        ws.tables.vacuum(TRIPS, retention_hours=-1, enforce_retention=False)
    assert data_files(location) == files


def test_drop_deletes_metadata_and_data(trips: Workspace) -> None:
    ws = trips
    location = Path(ws.tables.get(TRIPS).location)
    assert (location / "_delta_log").is_dir()

    dropped = ws.tables.drop(TRIPS)

    assert dropped.full_name == TRIPS
    assert not location.exists()
    assert not ws.tables.exists(TRIPS)
    with pytest.raises(SecurableNotFound):
        ws.tables.read(TRIPS)
    info = ws.tables.create(TRIPS, data=pa.table({"id": [1], "city": ["new"], "fare": [1.0]}))
    assert info.version == 0
    assert rows(ws) == [{"id": 1, "city": "new", "fare": 1.0}]


def test_dropping_the_schema_with_cascade_deletes_table_data(trips: Workspace) -> None:
    location = Path(trips.tables.get(TRIPS).location)
    trips.schemas.drop("dev.raw", cascade=True)
    assert not location.exists()
    assert not trips.tables.exists(TRIPS)


# --- importing files ---------------------------------------------------------------------


def test_import_csv_creates_then_appends(ws: Workspace, tmp_path: Path) -> None:
    first = tmp_path / "trips.csv"
    first.write_text("id,city,fare\n1,ams,10.5\n2,ber,20\n")
    second = tmp_path / "more.csv"
    second.write_text("id,city,fare\n3,cph,30\n")

    created = ws.tables.import_file(TRIPS, first)
    appended = ws.tables.import_file(TRIPS, second)

    assert (created.version, created.rows_written) == (0, 2)
    assert (appended.version, appended.rows_written) == (1, 1)
    assert ws.tables.get(TRIPS).schema == TRIPS_SCHEMA
    assert rows(ws) == [
        {"id": 1, "city": "ams", "fare": 10.5},
        {"id": 2, "city": "ber", "fare": 20.0},
        {"id": 3, "city": "cph", "fare": 30.0},
    ]


def test_import_parquet_with_partitions_and_overwrite(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "trips.parquet"
    pq.write_table(pa.table({"id": [1, 2], "city": ["ams", "ber"], "fare": [1.0, 2.0]}), path)

    ws.tables.import_file(TRIPS, path, partition_by=["city"])
    assert ws.tables.get(TRIPS).partition_columns == ["city"]

    pq.write_table(pa.table({"id": [3], "city": ["cph"], "fare": [3.0]}), path)
    result = ws.tables.import_file(TRIPS, path, mode="overwrite")
    assert result.version == 1
    assert rows(ws) == [{"id": 3, "city": "cph", "fare": 3.0}]


def test_import_json_lines(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"id": 1, "city": "ams", "fare": 1.5}\n\n{"id": 2, "city": null, "fare": 2.5}\n')

    result = ws.tables.import_file(TRIPS, path)

    assert (result.version, result.rows_written) == (0, 2)
    assert rows(ws) == [{"id": 1, "city": "ams", "fare": 1.5}, {"id": 2, "city": None, "fare": 2.5}]


def test_import_with_explicit_format(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text("id,city,fare\n1,ams,1.0\n")

    with pytest.raises(BadInputData, match="format"):
        ws.tables.import_file(TRIPS, path)
    assert not ws.tables.exists(TRIPS)
    ws.tables.import_file(TRIPS, path, file_format="csv")
    assert rows(ws) == [{"id": 1, "city": "ams", "fare": 1.0}]


def test_bad_csv_is_bad_input_with_one_line_and_leaves_table(trips: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text("id,city,fare\n4,cph\n5,osl,5.0,extra\n")
    before = snapshot(trips)

    with pytest.raises(BadInputData) as caught:
        trips.tables.import_file(TRIPS, path)

    message = caught.value.message
    assert "\n" not in message
    assert "broken.csv" in message
    assert snapshot(trips) == before


def test_bad_csv_does_not_create_a_table(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text("id,city\n1\n")
    with pytest.raises(BadInputData):
        ws.tables.import_file(TRIPS, path)
    assert not ws.tables.exists(TRIPS)


def test_csv_with_wrong_types_is_schema_mismatch_and_leaves_table(trips: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "typo.csv"
    path.write_text("id,city,fare\nfour,cph,4.0\n")
    before = snapshot(trips)

    with pytest.raises(SchemaMismatch, match="'id'"):
        trips.tables.import_file(TRIPS, path)
    assert snapshot(trips) == before


def test_bad_json_lines_and_missing_files_are_bad_input(trips: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": 4}\n{"id": \n')
    before = snapshot(trips)

    with pytest.raises(BadInputData) as caught:
        trips.tables.import_file(TRIPS, path)
    assert "\n" not in caught.value.message
    with pytest.raises(BadInputData, match="does not exist"):
        trips.tables.import_file(TRIPS, tmp_path / "nope.csv")
    assert snapshot(trips) == before


def test_nanosecond_timestamps_are_truncated_to_microseconds(ws: Workspace) -> None:
    import pandas as pd

    frame = pd.DataFrame({"ts": pd.to_datetime(["2026-01-01 00:00:00.123456789"])})
    ws.tables.create("dev.raw.precise", data=frame)
    stored = ws.tables.read("dev.raw.precise").column("ts")[0].as_py()
    assert stored == datetime(2026, 1, 1, 0, 0, 0, 123456)
