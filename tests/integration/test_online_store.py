"""The online store conformance suite: every test runs on the embedded SQLite store and on Redis.

Publishing (snapshot, incremental from the change feed, fallback), lookups (newest values, TTL,
unknown keys, input order, multi-column keys, types), grants and names, against the real stores.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack import Workspace
from lakestack.config import OnlineConfig, WorkspaceConfig
from lakestack.errors import (
    Conflict,
    InvalidName,
    InvalidParameter,
    NotPublished,
    OnlineStoreUnavailable,
    PrivilegeMissing,
    SchemaMismatch,
    SecurableNotFound,
)
from lakestack.features.online import OnlineStore, open_store
from lakestack.features.online.base import OnlineTableState

SPEND = "dev.fs.spend"  # customer_id + ts -> spend, visits
PROFILE = "dev.fs.profile"  # customer_id -> plan (no timestamp key)


def day(d: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, d, hour)


def ago(**delta: float) -> datetime:
    return datetime.now(UTC).replace(tzinfo=None) - timedelta(**delta)


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def online(request: pytest.FixtureRequest) -> OnlineConfig:
    if request.param == "sqlite":
        return OnlineConfig()
    return OnlineConfig(
        url=request.getfixturevalue("redis_url"), key_prefix=request.getfixturevalue("redis_prefix")
    )


def make_workspace(folder: Path, online: OnlineConfig) -> Workspace:
    folder.mkdir(parents=True)
    WorkspaceConfig(name="online_test", online=online).dump(folder)
    return Workspace.init(folder)


@pytest.fixture
def ws(tmp_path: Path, online: OnlineConfig) -> Any:
    """dev.fs with SPEND (customer 1 at days 1, 5, 9; customer 2 at day 3) and PROFILE (1, 2)."""
    workspace = make_workspace(tmp_path / "ws", online)
    workspace.schemas.create("dev.fs")
    workspace.features.create_table(
        SPEND,
        primary_keys="customer_id",
        timestamp_key="ts",
        df=pa.table(
            {
                "customer_id": [1, 1, 1, 2],
                "ts": [day(1), day(5), day(9), day(3)],
                "spend": [11.0, 51.0, 91.0, 32.0],
                "visits": [1, 5, 9, 3],
            }
        ),
    )
    workspace.features.create_table(
        PROFILE, primary_keys="customer_id", df=pa.table({"customer_id": [1, 2], "plan": ["free", "plus"]})
    )
    yield workspace
    workspace.close()


def lookup(ws: Workspace, name: str, ids: list[Any], column: str) -> list[Any]:
    keys = [{"customer_id": i} for i in ids]
    return ws.features.get_online_features(name, keys).column(column).to_pylist()


def spend_rows(ids: list[int], days: list[datetime], spend: list[float | None]) -> pa.Table:
    return pa.table(
        {
            "customer_id": ids,
            "ts": pa.array(days, pa.timestamp("us")),
            "spend": pa.array(spend, pa.float64()),
            "visits": pa.array([None] * len(ids), pa.int64()),
        }
    )


# --- snapshot ---------------------------------------------------------------------------------


def test_snapshot_serves_the_newest_row_per_key(ws: Workspace) -> None:
    result = ws.features.publish_table(SPEND, mode="snapshot")
    assert (result.table, result.mode, result.from_version, result.to_version) == (SPEND, "snapshot", None, 0)
    assert result.rows_written == 2 and result.keys_deleted == 0 and result.fallback_reason is None
    assert result.seconds > 0 and "secret" not in result.store
    out = ws.features.get_online_features(SPEND, [{"customer_id": 1}, {"customer_id": 2}])
    assert out.to_pylist() == [
        {"customer_id": 1, "spend": 91.0, "visits": 9},
        {"customer_id": 2, "spend": 32.0, "visits": 3},
    ]
    assert (
        out.schema.field("customer_id").type == pa.int64() and out.schema.field("visits").type == pa.int64()
    )


def test_a_snapshot_replaces_the_online_table(ws: Workspace) -> None:
    ws.features.publish_table(SPEND)
    ws.tables.write(SPEND, spend_rows([3], [day(4)], [43.0]), mode="overwrite")
    result = ws.features.publish_table(SPEND, mode="snapshot")
    assert result.mode == "snapshot" and result.rows_written == 1
    assert lookup(ws, SPEND, [1, 2, 3], "spend") == [None, None, 43.0]


def test_first_incremental_publish_runs_as_a_snapshot_and_says_why(ws: Workspace) -> None:
    result = ws.features.publish_table(PROFILE)
    assert result.mode == "snapshot" and result.fallback_reason == "the table was not published yet"
    assert lookup(ws, PROFILE, [2, 1], "plan") == ["plus", "free"]


# --- incremental ------------------------------------------------------------------------------


def test_incremental_applies_newer_upserts_and_never_older_timestamps(ws: Workspace) -> None:
    ws.features.publish_table(SPEND)
    # customer 1: a late row for day 2 (older than day 9 online); customer 2: a newer day-4 row;
    # customer 3: new
    ws.features.write_table(SPEND, spend_rows([1, 2, 3], [day(2), day(4), day(1)], [21.0, 42.0, 13.0]))
    ws.features.write_table(SPEND, spend_rows([1], [day(3)], [31.0]))  # another late one, next version
    result = ws.features.publish_table(SPEND)
    assert (result.mode, result.from_version, result.to_version) == ("incremental", 1, 2)
    assert result.rows_written == 2 and result.keys_deleted == 0 and result.fallback_reason is None
    assert lookup(ws, SPEND, [1, 2, 3], "spend") == [91.0, 42.0, 13.0]

    # updating the newest row itself (same timestamp) does change the online value
    ws.features.write_table(SPEND, spend_rows([1], [day(9)], [99.0]))
    assert ws.features.publish_table(SPEND).rows_written == 1
    assert lookup(ws, SPEND, [1], "spend") == [99.0]
    assert lookup(ws, SPEND, [1], "visits") == [None]  # a whole-row upsert: the new null is served


def test_incremental_matches_a_snapshot_of_the_same_version(ws: Workspace, tmp_path: Path) -> None:
    ws.features.publish_table(SPEND)
    ws.features.write_table(SPEND, spend_rows([2, 4, 1], [day(8), day(2), day(6)], [82.0, 24.0, 61.0]))
    ws.features.write_table(SPEND, spend_rows([4, 2], [day(1), day(8)], [14.0, 83.0]))
    ws.features.publish_table(SPEND)
    incremental = ws.features.get_online_features(SPEND, [{"customer_id": i} for i in range(6)])
    ws.features.publish_table(SPEND, mode="snapshot")
    snapshot = ws.features.get_online_features(SPEND, [{"customer_id": i} for i in range(6)])
    assert incremental == snapshot
    assert snapshot.column("spend").to_pylist() == [None, 91.0, 83.0, None, 24.0, None]


def test_incremental_without_a_timestamp_key_takes_the_last_commit(ws: Workspace) -> None:
    ws.features.publish_table(PROFILE)
    ws.features.write_table(PROFILE, pa.table({"customer_id": [1, 3], "plan": ["pro", "free"]}))
    ws.features.write_table(PROFILE, pa.table({"customer_id": [1], "plan": ["team"]}))
    result = ws.features.publish_table(PROFILE)
    assert (result.mode, result.rows_written) == ("incremental", 2)
    assert lookup(ws, PROFILE, [1, 2, 3], "plan") == ["team", "plus", "free"]


def test_deletes_refresh_a_key_to_its_next_newest_row_or_remove_it(ws: Workspace) -> None:
    ws.features.publish_table(SPEND)
    gone = spend_rows([1, 2], [day(9), day(3)], [None, None])  # the newest row of 1, the only row of 2
    ws.tables.merge(SPEND, gone, keys=["customer_id", "ts"], delete_condition="s.spend IS NULL")
    result = ws.features.publish_table(SPEND)
    assert (result.mode, result.rows_written, result.keys_deleted) == ("incremental", 1, 1)
    assert lookup(ws, SPEND, [1, 2], "spend") == [51.0, None]

    ws.features.write_table(SPEND, spend_rows([2], [day(2)], [22.0]))  # 2 comes back, with an old row
    assert ws.features.publish_table(SPEND).rows_written == 1
    assert lookup(ws, SPEND, [1, 2], "spend") == [51.0, 22.0]


def test_an_overwrite_is_applied_as_deletes_and_inserts(ws: Workspace) -> None:
    ws.features.publish_table(PROFILE)
    ws.tables.write(PROFILE, pa.table({"customer_id": [2, 5], "plan": ["pro", "free"]}), mode="overwrite")
    result = ws.features.publish_table(PROFILE)
    assert (result.mode, result.keys_deleted) == ("incremental", 1)
    assert lookup(ws, PROFILE, [1, 2, 5], "plan") == [None, "pro", "free"]


def test_publishing_twice_without_new_versions_writes_nothing(ws: Workspace, online: OnlineConfig) -> None:
    first = ws.features.publish_table(SPEND)
    again = ws.features.publish_table(SPEND)
    assert (again.mode, again.rows_written, again.keys_deleted) == ("incremental", 0, 0)
    assert again.up_to_date and not first.up_to_date
    assert (again.from_version, again.to_version) == (1, 0)
    store = open_store(online, ws.folder, ws.config.name)
    state = store.state(SPEND)
    assert state is not None and state.revision == 1  # nothing was written, not even the state
    store.close()


def test_incremental_falls_back_to_a_snapshot_when_the_feed_is_vacuumed(ws: Workspace) -> None:
    ws.features.publish_table(SPEND)
    ws.tables.write(SPEND, spend_rows([2], [day(4)], [42.0]), mode="overwrite")  # the feed reads its files
    ws.features.write_table(SPEND, spend_rows([2, 3], [day(5), day(1)], [52.0, 13.0]))
    assert ws.tables.vacuum(SPEND, retention_hours=0, enforce_retention=False)
    result = ws.features.publish_table(SPEND)
    version = ws.features.get_table(SPEND).version  # vacuum commits versions of its own
    assert result.mode == "snapshot" and result.to_version == version
    assert (
        result.fallback_reason is not None
        and f"change feed of versions 1-{version} is unavailable" in result.fallback_reason
    )
    assert lookup(ws, SPEND, [1, 2, 3], "spend") == [None, 52.0, 13.0]


def test_new_columns_fall_back_to_a_snapshot_that_publishes_them(ws: Workspace) -> None:
    ws.features.publish_table(PROFILE)
    wider = pa.table({"customer_id": [2], "plan": ["pro"], "seats": [5]})
    ws.features.write_table(PROFILE, wider, evolve_schema=True)
    result = ws.features.publish_table(PROFILE)
    assert result.mode == "snapshot" and result.fallback_reason == "the published columns changed"
    out = ws.features.get_online_features(PROFILE, [{"customer_id": 1}, {"customer_id": 2}])
    assert out.to_pylist() == [
        {"customer_id": 1, "plan": "free", "seats": None},
        {"customer_id": 2, "plan": "pro", "seats": 5},
    ]


# --- TTL --------------------------------------------------------------------------------------


def test_values_older_than_the_ttl_are_nulls(ws: Workspace) -> None:
    ws.features.create_table(
        "dev.fs.recent",
        primary_keys="id",
        timestamp_key="ts",
        df=pa.table({"id": [1, 2, 2], "ts": [ago(hours=1), ago(days=3), ago(days=9)], "x": [1.0, 2.0, 3.0]}),
    )
    ws.features.publish_table("dev.fs.recent", ttl=timedelta(days=1))
    out = ws.features.get_online_features("dev.fs.recent", [{"id": 2}, {"id": 1}])
    assert out.to_pylist() == [{"id": 2, "x": None}, {"id": 1, "x": 1.0}]  # keys stay, values go
    handle = ws.features.online_lookup("dev.fs.recent")
    assert handle.get_row(2) == {"x": None} and handle.get_row({"id": 1}) == {"x": 1.0}
    assert handle.state.ttl == timedelta(days=1)

    ws.features.write_table("dev.fs.recent", pa.table({"id": [2], "ts": [ago(minutes=5)], "x": [4.0]}))
    ws.features.publish_table("dev.fs.recent")  # no ttl given: the published one is kept
    assert handle.state.ttl == timedelta(days=1)
    assert handle.get_row(2) == {"x": 4.0}
    ws.features.publish_table("dev.fs.recent", ttl=timedelta(days=5))  # nothing new: only the TTL
    assert ws.features.get_online_features("dev.fs.recent", [{"id": 1}]).column("x").to_pylist() == [1.0]
    assert handle.get([{"id": 2}]).column("x").to_pylist() == [4.0]
    assert handle.state.ttl == timedelta(days=5)


def test_without_a_timestamp_key_the_ttl_counts_from_the_publish(ws: Workspace) -> None:
    ws.features.publish_table(PROFILE, ttl=timedelta(microseconds=1))
    assert lookup(ws, PROFILE, [1, 2], "plan") == [None, None]
    ws.features.publish_table(PROFILE, mode="snapshot", ttl=timedelta(days=1))
    assert lookup(ws, PROFILE, [1, 2], "plan") == ["free", "plus"]
    with pytest.raises(InvalidParameter, match="positive timedelta"):
        ws.features.publish_table(PROFILE, ttl=timedelta(0))
    with pytest.raises(InvalidParameter, match="positive timedelta"):
        ws.features.publish_table(PROFILE, ttl=7)  # type: ignore[arg-type]


# --- lookups ----------------------------------------------------------------------------------


def test_unknown_keys_give_null_rows_in_input_order_with_duplicates(ws: Workspace) -> None:
    ws.features.publish_table(SPEND)
    out = ws.features.get_online_features(SPEND, [{"customer_id": i} for i in [2, 7, 1, 2, 1]])
    assert out.column("customer_id").to_pylist() == [2, 7, 1, 2, 1]
    assert out.column("spend").to_pylist() == [32.0, None, 91.0, 32.0, 91.0]
    assert ws.features.get_online_features(SPEND, []).num_rows == 0
    many = list(range(-50, 60))  # more keys than one statement/pipeline round takes them one by one
    spend = lookup(ws, SPEND, many, "spend")
    assert spend[many.index(1)] == 91.0 and spend[many.index(2)] == 32.0 and spend.count(None) == 108


def test_keys_as_dataframes_and_arrow_tables_and_single_dicts(ws: Workspace) -> None:
    import pandas as pd
    import polars as pl

    ws.features.publish_table(SPEND)
    frame = pd.DataFrame({"request_id": ["a", "b"], "customer_id": [2, 1]})
    assert ws.features.get_online_features(SPEND, frame).column_names == ["customer_id", "spend", "visits"]
    assert ws.features.get_online_features(SPEND, frame).column("spend").to_pylist() == [32.0, 91.0]
    polars_keys = pl.DataFrame({"customer_id": [1]})
    assert ws.features.get_online_features(SPEND, polars_keys, to="polars")["spend"].to_list() == [91.0]
    arrow_keys = pa.table({"customer_id": pa.array([2], pa.int32())})  # cast to the key's int64
    assert ws.features.get_online_features(SPEND, arrow_keys).column("spend").to_pylist() == [32.0]
    assert ws.features.get_online_features(SPEND, {"customer_id": "1"}).column("spend").to_pylist() == [91.0]
    floats = ws.features.get_online_features(SPEND, [{"customer_id": 2.0}, {"customer_id": 1}])
    assert floats.column("spend").to_pylist() == [32.0, 91.0]  # 2.0 is the int key 2, in every store
    pandas_out = ws.features.get_online_features(SPEND, [{"customer_id": 1}], to="pandas")
    assert pandas_out["visits"].tolist() == [9]


def test_bad_keys_are_refused_naming_the_column(ws: Workspace) -> None:
    ws.features.publish_table(SPEND)
    with pytest.raises(SchemaMismatch, match=r"Key column 'customer_id' is int64"):
        ws.features.get_online_features(SPEND, [{"customer_id": "abc"}])
    with pytest.raises(InvalidParameter, match="lack column"):
        ws.features.get_online_features(SPEND, pa.table({"id": [1]}))
    with pytest.raises(InvalidParameter, match=r"Lookup key 'customer_id' of 'dev\.fs\.spend' is missing"):
        ws.features.get_online_features(SPEND, [{"id": 1}])
    with pytest.raises(SchemaMismatch, match="null"):
        ws.features.get_online_features(SPEND, [{"customer_id": None}])
    with pytest.raises(InvalidParameter, match="must be dicts"):
        ws.features.get_online_features(SPEND, [1, 2])


def test_multi_column_keys(ws: Workspace) -> None:
    ws.features.create_table(
        "dev.fs.stock",
        primary_keys=["store", "sku"],
        timestamp_key="ts",
        df=pa.table(
            {
                "store": ["a", "a", "b", "b"],
                "sku": [1, 2, 1, 1],
                "ts": [day(1), day(1), day(1), day(5)],
                "qty": [10, 20, 30, 35],
            }
        ),
    )
    ws.features.publish_table("dev.fs.stock")
    ws.features.write_table(
        "dev.fs.stock",
        pa.table({"store": ["a", "b"], "sku": [1, 1], "ts": [day(2), day(3)], "qty": [11, 33]}),
    )
    assert ws.features.publish_table("dev.fs.stock").rows_written == 1  # (b, 1) at day 3 is older than day 5
    keys = [{"store": s, "sku": k} for s, k in [("b", 1), ("a", 2), ("a", 1), ("c", 1), ("b", 2)]]
    out = ws.features.get_online_features("dev.fs.stock", keys)
    assert out.column_names == ["store", "sku", "qty"]
    assert out.column("qty").to_pylist() == [35, 20, 11, None, None]
    handle = ws.features.online_lookup("dev.fs.stock")
    assert handle.keys == ["store", "sku"] and handle.get_row({"store": "a", "sku": 2}) == {"qty": 20}
    with pytest.raises(InvalidParameter, match="pass a dict"):
        handle.get_row("a")
    many = [{"store": "a", "sku": i % 3} for i in range(40)]  # the batched path, with a 2-column key
    assert handle.get(many).column("qty").to_pylist()[:3] == [None, 11, 20]


def test_feature_types_round_trip(ws: Workspace) -> None:
    rows = pa.table(
        {
            "id": pa.array(["x", "y"], pa.string()),
            "flag": pa.array([True, None], pa.bool_()),
            "small": pa.array([-3, 4], pa.int8()),
            "ratio": pa.array([0.1, float("inf")], pa.float32()),
            "price": pa.array([Decimal("12.34"), Decimal("-0.01")], pa.decimal128(10, 2)),
            "born": pa.array([date(1990, 5, 17), None], pa.date32()),
            "seen": pa.array([datetime(2026, 1, 2, 3, 4, 5, 6), None], pa.timestamp("us", tz="UTC")),
            "blob": pa.array([b"\x00\xff", b""], pa.binary()),
            "embedding": pa.array([[0.5, -1.25], []], pa.list_(pa.float64())),
            "info": pa.array([{"a": 1, "b": "q"}, None], pa.struct([("a", pa.int64()), ("b", pa.string())])),
        }
    )
    ws.features.create_table("dev.fs.types", primary_keys="id", df=rows)
    ws.features.publish_table("dev.fs.types")
    out = ws.features.get_online_features("dev.fs.types", [{"id": "x"}, {"id": "y"}])
    table = ws.features.read_table("dev.fs.types").sort_by("id")
    assert out.schema == table.schema
    assert out.to_pylist() == table.to_pylist()
    handle = ws.features.online_lookup("dev.fs.types")
    assert handle.get_row("x") == {k: v for k, v in table.to_pylist()[0].items() if k != "id"}


def test_unsupported_types_are_refused_before_publishing(ws: Workspace) -> None:
    nested = pa.table({"id": [1], "when": pa.array([[day(1)]], pa.list_(pa.timestamp("us")))})
    ws.features.create_table("dev.fs.nested", primary_keys="id", df=nested)
    with pytest.raises(SchemaMismatch, match=r"Column 'when'.*cannot be a feature.*feature_names"):
        ws.features.publish_table("dev.fs.nested")
    with pytest.raises(NotPublished):
        ws.features.get_online_features("dev.fs.nested", [{"id": 1}])


def test_feature_subsets(ws: Workspace) -> None:
    result = ws.features.publish_table(SPEND, feature_names=["visits"])
    out = ws.features.get_online_features(SPEND, [{"customer_id": 1}])
    assert out.to_pylist() == [{"customer_id": 1, "visits": 9}]
    with pytest.raises(InvalidParameter, match=r"not published online; published: visits"):
        ws.features.get_online_features(SPEND, [{"customer_id": 1}], feature_names=["spend"])
    with pytest.raises(InvalidParameter, match=r"has no feature\(s\) nope; its features are spend, visits"):
        ws.features.publish_table(SPEND, feature_names=["nope"])
    assert result.rows_written == 2
    ws.features.publish_table(SPEND)  # all features now: the columns changed, so a snapshot
    both = ws.features.get_online_features(SPEND, [{"customer_id": 1}], feature_names=["spend", "visits"])
    assert both.to_pylist() == [{"customer_id": 1, "spend": 91.0, "visits": 9}]


def test_a_lookup_handle_follows_republishing(ws: Workspace) -> None:
    ws.features.publish_table(PROFILE)
    handle = ws.features.online_lookup(PROFILE)
    assert handle.get_row(1) == {"plan": "free"}
    ws.features.write_table(PROFILE, pa.table({"customer_id": [1], "plan": ["pro"]}))
    ws.features.publish_table(PROFILE)  # incremental: same generation
    assert handle.get_row(1) == {"plan": "pro"}
    ws.features.write_table(
        PROFILE, pa.table({"customer_id": [1], "plan": ["team"], "seats": [3]}), evolve_schema=True
    )
    ws.features.publish_table(PROFILE)  # a snapshot into a new generation, with a new column
    assert handle.get_row(1) == {"plan": "team", "seats": 3}
    assert handle.get([{"customer_id": 2}]).to_pylist() == [{"customer_id": 2, "plan": "plus", "seats": None}]
    ws.features.unpublish_table(PROFILE)
    with pytest.raises(NotPublished):
        handle.get_row(1)


def test_lookups_while_republishing_always_see_a_whole_table(ws: Workspace) -> None:
    ws.features.publish_table(PROFILE)
    handle = ws.features.online_lookup(PROFILE)
    seen: set[Any] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                seen.add(
                    tuple(handle.get([{"customer_id": 1}, {"customer_id": 2}]).column("plan").to_pylist())
                )
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for plan in ["pro", "team", "free"]:
        ws.features.write_table(PROFILE, pa.table({"customer_id": [1, 2], "plan": [plan, plan]}))
        ws.features.publish_table(PROFILE, mode="snapshot")
    stop.set()
    for reader in readers:
        reader.join()
    assert not errors
    assert seen <= {("free", "plus"), ("pro", "pro"), ("team", "team"), ("free", "free")}
    assert (None, None) not in seen


# --- lifecycle and conflicts ------------------------------------------------------------------


def test_unpublish_and_drop_remove_the_online_copy(ws: Workspace, online: OnlineConfig) -> None:
    ws.features.publish_table(SPEND)
    ws.features.publish_table(PROFILE)
    store = open_store(online, ws.folder, ws.config.name)
    assert store.tables() == [PROFILE, SPEND]
    assert ws.features.unpublish_table(PROFILE) is True
    assert ws.features.unpublish_table(PROFILE) is False
    with pytest.raises(NotPublished, match=r"Publish it with ws.features.publish_table\('dev.fs.profile'\)"):
        ws.features.get_online_features(PROFILE, [{"customer_id": 1}])
    ws.features.drop_table(SPEND)
    assert store.tables() == [] and store.state(SPEND) is None
    store.close()


def test_a_stale_writer_gets_a_conflict_and_writes_nothing(ws: Workspace, online: OnlineConfig) -> None:
    ws.features.publish_table(PROFILE)
    store: OnlineStore = open_store(online, ws.folder, ws.config.name)
    stale = store.state(PROFILE)
    assert stale is not None
    ws.features.write_table(PROFILE, pa.table({"customer_id": [1], "plan": ["pro"]}))
    ws.features.publish_table(PROFILE)
    current = store.state(PROFILE)
    assert current is not None and current.revision == stale.revision + 1
    late = OnlineTableState(**{**stale.__dict__, "revision": stale.revision + 1, "version": 7})
    with pytest.raises(Conflict, match=r"Another publish of 'dev\.fs\.profile'"):
        store.write(late, [(1, 0, "stale")], [], stale)
    fresh_generation = OnlineTableState(**{**late.__dict__, "generation": stale.generation + 5})
    with pytest.raises(Conflict):
        store.write(fresh_generation, [(1, 0, "stale")], [], stale)
    assert lookup(ws, PROFILE, [1], "plan") == ["pro"]
    state, rows = store.read(PROFILE, [(1,), (2,)], ["plan"])
    assert state == current and [r[1:] if r else None for r in rows] == [("pro",), ("plus",)]
    store.close()


def test_workspaces_sharing_a_store_do_not_collide(
    tmp_path: Path, online: OnlineConfig, ws: Workspace
) -> None:
    other_config = (
        online
        if online.url.startswith("sqlite")
        else online.model_copy(update={"key_prefix": online.key_prefix + "other:"})
    )  # type: ignore[operator]
    other = make_workspace(tmp_path / "other", other_config)
    other.schemas.create("dev.fs")
    other.features.create_table(
        PROFILE, primary_keys="customer_id", df=pa.table({"customer_id": [1], "plan": ["x"]})
    )
    other.features.publish_table(PROFILE)
    ws.features.publish_table(PROFILE)
    assert lookup(other, PROFILE, [1, 2], "plan") == ["x", None]
    assert lookup(ws, PROFILE, [1, 2], "plan") == ["free", "plus"]
    other.features.unpublish_table(PROFILE)
    assert lookup(ws, PROFILE, [1], "plan") == ["free"]
    other.close()


# --- grants and names -------------------------------------------------------------------------


def test_publishing_needs_modify_and_lookups_need_select(ws: Workspace) -> None:
    ws.principals.create("alice")
    ws.grants.grant("USE_CATALOG", "catalog", "dev", "alice")
    ws.grants.grant("USE_SCHEMA", "schema", "dev.fs", "alice")
    alice = ws.as_principal("alice")
    with pytest.raises(PrivilegeMissing, match=r"lacks SELECT on table 'dev\.fs\.spend'"):
        alice.features.publish_table(SPEND)
    ws.grants.grant("SELECT", "table", SPEND, "alice")
    with pytest.raises(PrivilegeMissing, match=r"lacks MODIFY on table 'dev\.fs\.spend'"):
        alice.features.publish_table(SPEND)
    with pytest.raises(PrivilegeMissing, match="MODIFY"):
        alice.features.unpublish_table(SPEND)
    ws.features.publish_table(SPEND)
    ws.features.publish_table(PROFILE)
    assert lookup(alice, SPEND, [1], "spend") == [91.0]  # SELECT is enough to read
    with pytest.raises(PrivilegeMissing, match=r"lacks SELECT on table 'dev\.fs\.profile'"):
        alice.features.get_online_features(PROFILE, [{"customer_id": 1}])
    with pytest.raises(PrivilegeMissing, match="SELECT"):
        alice.features.online_lookup(PROFILE)
    ws.grants.grant("MODIFY", "table", SPEND, "alice")
    ws.features.write_table(SPEND, spend_rows([2], [day(4)], [42.0]))
    assert alice.features.publish_table(SPEND).rows_written == 1
    denied = ws.audit.list(principal="alice", denied_only=True)
    assert {(e.action, e.privilege) for e in denied} >= {
        ("features.publish", "MODIFY"),
        ("features.unpublish", "MODIFY"),
        ("features.online_lookup", "SELECT"),
    }


def test_names_are_validated_and_errors_say_how_to_fix(ws: Workspace) -> None:
    with pytest.raises(InvalidName, match="expected 3 part"):
        ws.features.publish_table("dev.fs")
    with pytest.raises(InvalidName, match="Invalid table name part"):
        ws.features.get_online_features("dev.fs.x;drop", [{"customer_id": 1}])
    with pytest.raises(InvalidName):
        ws.features.online_lookup("dev.fs.../etc")
    with pytest.raises(SecurableNotFound, match=r"Did you mean 'dev\.fs\.spend'"):
        ws.features.publish_table("dev.fs.spnd")
    with pytest.raises(InvalidParameter, match="Unknown publish mode 'full'"):
        ws.features.publish_table(SPEND, mode="full")
    with pytest.raises(NotPublished) as raised:
        ws.features.get_online_features("DEV.fs.SPEND", [{"customer_id": 1}])
    assert raised.value.message == (
        "Feature table 'dev.fs.spend' is not published to the online store. Publish it with "
        "ws.features.publish_table('dev.fs.spend') or `lakestack features publish dev.fs.spend`."
    )
    ws.tables.create("dev.fs.plain", data=pa.table({"id": [1]}))
    with pytest.raises(InvalidParameter, match="not a feature table"):
        ws.features.publish_table("dev.fs.plain")


def test_an_unreachable_redis_is_one_clear_error_without_the_password(tmp_path: Path) -> None:
    online = OnlineConfig(url="redis://:hunter2@127.0.0.1:1/0", key_prefix="x:")
    ws = make_workspace(tmp_path / "ws", online)
    ws.schemas.create("dev.fs")
    ws.features.create_table(
        PROFILE, primary_keys="customer_id", df=pa.table({"customer_id": [1], "plan": ["a"]})
    )
    with pytest.raises(
        OnlineStoreUnavailable, match=r"Online store redis://:\*\*\*@127.0.0.1:1/0 failed"
    ) as raised:
        ws.features.publish_table(PROFILE)
    assert "hunter2" not in raised.value.message and raised.value.http_status == 503
    ws.close()
