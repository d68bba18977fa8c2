"""Feature tables and point-in-time training sets (`ws.features`), on small hand-built data."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pytest

from lakestack import FeatureLookup, Workspace
from lakestack.errors import ExpectationFailed, InvalidParameter, PrivilegeMissing, SchemaMismatch
from lakestack.features import asof, training

SPEND = "dev.fs.spend"  # customer_id + ts -> spend (timestamped)
PROFILE = "dev.fs.profile"  # customer_id -> plan (no timestamp key)


def day(d: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, d, hour)


@pytest.fixture
def ws(sqlite_workspace: Workspace) -> Workspace:
    """dev.fs with SPEND: customer 1 at days 1, 5, 9; customer 2 at day 3 (spend = 10 * day + id)."""
    sqlite_workspace.schemas.create("dev.fs")
    sqlite_workspace.features.create_table(
        SPEND,
        primary_keys="customer_id",
        timestamp_key="ts",
        df=pa.table(
            {
                "customer_id": [1, 1, 1, 2],
                "ts": [day(1), day(5), day(9), day(3)],
                "spend": [11.0, 51.0, 91.0, 32.0],
            }
        ),
    )
    sqlite_workspace.features.create_table(
        PROFILE, primary_keys="customer_id", df=pa.table({"customer_id": [1, 2], "plan": ["free", "plus"]})
    )
    return sqlite_workspace


def labels(keys: list[Any], at: list[datetime | None], tz: str | None = None) -> pa.Table:
    return pa.table({"cid": keys, "at": pa.array(at, pa.timestamp("us", tz=tz)), "y": list(range(len(keys)))})


def column(ws: Workspace, df: pa.Table, lookups: list[FeatureLookup], name: str) -> list[Any]:
    built = ws.features.create_training_set(df, lookups, label="y" if "y" in df.column_names else None)
    return built.load_df().column(name).to_pylist()


def spend_asof(**options: Any) -> FeatureLookup:
    return FeatureLookup(SPEND, "cid", timestamp_lookup_key="at", **options)


def ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# --- create_table / get_table ----------------------------------------------------------------


def test_create_from_df_puts_the_timestamp_key_in_the_primary_key(ws: Workspace) -> None:
    table = ws.features.get_table(SPEND)
    assert table.primary_keys == ["customer_id", "ts"]
    assert table.timestamp_key == "ts" and table.lookup_keys == ["customer_id"]
    assert table.features == ["spend"] and table.version == 0
    assert ws.features.read_table(SPEND).num_rows == 4

    again = ws.features.create_table(
        "dev.fs.again",
        primary_keys=["customer_id", "ts"],  # naming the timestamp key among the keys too: no duplicate
        timestamp_key="ts",
        df=pa.table({"customer_id": [1], "ts": [day(1)], "spend": [1.0]}),
    )
    assert again.primary_keys == ["customer_id", "ts"]


def test_create_from_schema_is_empty_with_features_the_non_key_columns(ws: Workspace) -> None:
    schema = pa.schema(
        [
            ("store", pa.string()),
            ("sku", pa.int64()),
            ("ts", pa.timestamp("us")),
            ("qty", pa.int64()),
            ("price", pa.float64()),
        ]
    )
    table = ws.features.create_table(
        "dev.fs.sales", primary_keys=["store", "sku"], timestamp_key="ts", schema=schema
    )
    assert table.primary_keys == ["store", "sku", "ts"] and table.lookup_keys == ["store", "sku"]
    assert table.features == ["qty", "price"]
    assert table.schema.names == schema.names
    assert ws.features.read_table("dev.fs.sales").num_rows == 0

    dated = ws.features.create_table(
        "dev.fs.dated",
        primary_keys="k",
        timestamp_key="d",
        schema=pa.schema([("k", pa.int64()), ("d", pa.date32())]),
    )
    assert dated.timestamp_key == "d" and dated.features == []


def test_create_without_the_key_column_is_a_schema_mismatch(ws: Workspace) -> None:
    with pytest.raises(SchemaMismatch, match=r"customer_id.*not in its schema"):
        ws.features.create_table(
            "dev.fs.bad", primary_keys="customer_id", df=pa.table({"id": [1], "x": [1.0]})
        )
    with pytest.raises(SchemaMismatch, match="ts"):
        ws.features.create_table(
            "dev.fs.bad", primary_keys="id", timestamp_key="ts", schema=pa.schema([("id", pa.int64())])
        )
    assert not ws.tables.exists("dev.fs.bad")


def test_create_with_a_non_timestamp_timestamp_key_is_a_schema_mismatch(ws: Workspace) -> None:
    with pytest.raises(SchemaMismatch, match=r"Timestamp key 'ts'.*not a timestamp"):
        ws.features.create_table(
            "dev.fs.bad",
            primary_keys="id",
            timestamp_key="ts",
            df=pa.table({"id": [1], "ts": ["2026-01-01"]}),
        )
    with pytest.raises(SchemaMismatch, match="not a timestamp"):
        ws.features.create_table(
            "dev.fs.bad",
            primary_keys="id",
            timestamp_key="ts",
            schema=pa.schema([("id", pa.int64()), ("ts", pa.int64())]),
        )
    assert not ws.tables.exists("dev.fs.bad")


def test_create_with_duplicate_keys_in_df_is_invalid(ws: Workspace) -> None:
    dup = pa.table({"customer_id": [1, 1, 2], "ts": [day(1), day(1), day(1)], "spend": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidParameter, match="repeats 1 primary key") as raised:
        ws.features.create_table("dev.fs.dup", primary_keys="customer_id", timestamp_key="ts", df=dup)
    assert not isinstance(raised.value, SchemaMismatch)
    assert not ws.tables.exists("dev.fs.dup")
    # the same key at two different timestamps is fine
    fine = dup.set_column(1, "ts", pa.array([day(1), day(2), day(1)], pa.timestamp("us")))
    assert ws.features.create_table("dev.fs.dup", "customer_id", timestamp_key="ts", df=fine).version == 0


def test_get_table_on_a_plain_table_says_how_to_make_a_feature_table(ws: Workspace) -> None:
    ws.tables.create("dev.fs.plain", data=pa.table({"id": [1], "x": [1.0]}))
    with pytest.raises(InvalidParameter, match="not a feature table") as raised:
        ws.features.get_table("dev.fs.plain")
    assert "ws.features.create_table(name, primary_keys=...)" in raised.value.message
    with pytest.raises(InvalidParameter, match="not a feature table"):
        ws.features.write_table("dev.fs.plain", pa.table({"id": [2], "x": [2.0]}))
    with pytest.raises(InvalidParameter, match="not a feature table"):
        ws.features.create_training_set(
            pa.table({"id": [1]}), [FeatureLookup("dev.fs.plain", "id")], label=None
        )
    assert ws.tables.get("dev.fs.plain").version == 0


def test_tags_and_description_round_trip(ws: Workspace) -> None:
    created = ws.features.create_table(
        "dev.fs.tagged",
        primary_keys="id",
        df=pa.table({"id": [1], "score": [0.5], "segment": ["a"]}),
        description="Customer scores, daily",
        tags={"owner": "growth", "pii": "false"},
    )
    fetched = ws.features.get_table("dev.fs.tagged")
    for table in (created, fetched):
        assert table.description == "Customer scores, daily"
        assert table.tags == {"owner": "growth", "pii": "false"}
        assert table.features == ["score", "segment"] and table.timestamp_key is None
    assert ws.tables.get("dev.fs.tagged").comment == "Customer scores, daily"
    assert ws.features.get_table(PROFILE).tags == {} and ws.features.get_table(PROFILE).description is None


# --- write_table -------------------------------------------------------------------------------


def test_write_table_upserts_on_the_full_key(ws: Workspace) -> None:
    result = ws.features.write_table(
        SPEND,
        pa.table(
            {
                "customer_id": [1, 1, 2],
                "ts": [day(5), day(6), day(1)],  # (1, day 5) exists; (1, day 6) and (2, day 1) are new
                "spend": [55.0, 61.0, 12.0],
            }
        ),
    )
    assert result.version == 1
    assert result.metrics["num_target_rows_updated"] == 1 and result.metrics["num_target_rows_inserted"] == 2
    stored = sorted(
        (r["customer_id"], r["ts"].day, r["spend"]) for r in ws.features.read_table(SPEND).to_pylist()
    )
    assert stored == [(1, 1, 11.0), (1, 5, 55.0), (1, 6, 61.0), (1, 9, 91.0), (2, 1, 12.0), (2, 3, 32.0)]

    ws.features.write_table(SPEND, pa.table({"customer_id": [1], "ts": [day(5)], "spend": [56.0]}))  # again
    again = ws.features.read_table(SPEND).to_pylist()
    assert len(again) == 6
    assert [r["spend"] for r in again if r["customer_id"] == 1 and r["ts"] == day(5)] == [56.0]
    assert ws.features.read_table(SPEND, version=0).num_rows == 4  # time travel, as for any table


def test_write_table_with_a_null_key_fails_and_changes_nothing(ws: Workspace) -> None:
    before = ws.features.get_table(SPEND).version
    null_id = pa.table(
        {"customer_id": pa.array([None, 3], pa.int64()), "ts": [day(1), day(1)], "spend": [1.0, 2.0]}
    )
    with pytest.raises(ExpectationFailed, match="customer_id_not_null"):
        ws.features.write_table(SPEND, null_id)
    null_ts = pa.table({"customer_id": [3], "ts": pa.array([None], pa.timestamp("us")), "spend": [1.0]})
    with pytest.raises(ExpectationFailed, match="ts_not_null"):
        ws.features.write_table(SPEND, null_ts)
    assert ws.features.get_table(SPEND).version == before
    assert len(ws.features.history(SPEND)) == before + 1
    assert ws.features.read_table(SPEND).num_rows == 4
    with pytest.raises(
        ExpectationFailed, match="customer_id_not_null"
    ):  # the key check holds for ws.tables too
        ws.tables.write(SPEND, null_id)


def test_write_table_new_column_needs_evolve_schema(ws: Workspace) -> None:
    wider = pa.table({"customer_id": [2], "ts": [day(4)], "spend": [42.0], "visits": [7]})
    with pytest.raises(SchemaMismatch, match="visits"):
        ws.features.write_table(SPEND, wider)
    assert ws.features.get_table(SPEND).version == 0

    ws.features.write_table(SPEND, wider, evolve_schema=True)
    table = ws.features.get_table(SPEND)
    assert table.features == ["spend", "visits"] and table.version == 1
    visits = {(r["customer_id"], r["ts"].day): r["visits"] for r in ws.features.read_table(SPEND).to_pylist()}
    assert visits == {(1, 1): None, (1, 5): None, (1, 9): None, (2, 3): None, (2, 4): 7}


# --- point in time -----------------------------------------------------------------------------


def test_as_of_is_inclusive_and_never_uses_newer_rows(ws: Workspace) -> None:
    # rows of customer 1 at days 1, 5, 9 (11, 51, 91)
    at = [day(1), day(4, 23), day(5), day(5, 1), day(8, 23), day(9), day(30)]
    assert column(ws, labels([1] * 7, at), [spend_asof()], "spend") == [
        11.0,
        11.0,
        51.0,
        51.0,
        51.0,
        91.0,
        91.0,
    ]


def test_no_earlier_row_or_unknown_key_gives_null(ws: Workspace) -> None:
    df = labels([1, 2, 3, None, 1], [day(1) - timedelta(microseconds=1), day(2), day(9), day(9), None])
    # before the first row; customer 2 starts on day 3; 3 is unknown; null key; null timestamp
    assert column(ws, df, [spend_asof()], "spend") == [None, None, None, None, None]
    assert column(ws, df, [FeatureLookup(PROFILE, "cid")], "plan") == ["free", "plus", None, None, "free"]


def test_defaults_fill_misses_but_a_stored_null_stays_null(ws: Workspace) -> None:
    ws.features.write_table(
        SPEND, pa.table({"customer_id": [2], "ts": [day(7)], "spend": pa.array([None], pa.float64())})
    )
    df = labels([1, 2, 2, 3, 1], [day(1) - timedelta(microseconds=1), day(2), day(7), day(9), day(20)])
    lookup = spend_asof(default_values={"spend": -1.0}, lookback_window=timedelta(days=10))
    # too early, too early, stored NULL matched, unknown key, lookback miss (the day-9 row is 11 days old)
    assert column(ws, df, [lookup], "spend") == [-1.0, -1.0, None, -1.0, -1.0]
    assert "a stored NULL in a matched row stays NULL" in (training.__doc__ or "")

    ws.features.write_table(PROFILE, pa.table({"customer_id": [3], "plan": pa.array([None], pa.string())}))
    plain = FeatureLookup(PROFILE, "cid", default_values={"plan": "none"})
    assert column(ws, labels([1, 3, 4], [day(1)] * 3), [plain], "plan") == ["free", None, "none"]


def test_lookback_window_bounds_the_age_inclusively(ws: Workspace) -> None:
    # customer 2's only row is at day 3
    at = [day(3), day(5), day(5) + timedelta(microseconds=1), day(30)]
    assert column(ws, labels([2] * 4, at), [spend_asof(lookback_window=timedelta(days=2))], "spend") == [
        32.0,
        32.0,
        None,
        None,
    ]
    # customer 1 at day 10: the day-9 row is within a day; with half a day there is none (not the day-5 row)
    one = labels([1], [day(10)])
    assert column(ws, one, [spend_asof(lookback_window=timedelta(days=1))], "spend") == [91.0]
    assert column(ws, one, [spend_asof(lookback_window=timedelta(hours=12))], "spend") == [None]


def test_zero_lookback_is_an_exact_match_only(ws: Workspace) -> None:
    at = [day(5), day(5) + timedelta(microseconds=1), day(9), day(8), day(3)]
    lookup = spend_asof(lookback_window=timedelta(0), default_values={"spend": 0.0})
    assert column(ws, labels([1, 1, 1, 1, 2], at), [lookup], "spend") == [51.0, 0.0, 91.0, 0.0, 32.0]


def test_duplicate_label_rows_are_kept_in_input_order(ws: Workspace) -> None:
    df = labels([2, 1, 2, 1, 1, 2], [day(9), day(6), day(9), day(2), day(6), day(1)])
    out = ws.features.create_training_set(
        df, [spend_asof(), FeatureLookup(PROFILE, "cid")], label="y"
    ).load_df()
    assert out.num_rows == 6
    assert out.column("y").to_pylist() == [0, 1, 2, 3, 4, 5]
    assert out.column("cid").to_pylist() == [2, 1, 2, 1, 1, 2]
    assert out.column("spend").to_pylist() == [32.0, 51.0, 32.0, 11.0, 51.0, None]
    assert out.column("plan").to_pylist() == ["plus", "free", "plus", "free", "free", "plus"]


def test_multi_column_lookup_keys_match_in_key_order(ws: Workspace) -> None:
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
    df = pa.table(
        {
            "shop": ["a", "a", "b", "b", "c", "a"],
            "item": [1, 2, 1, 1, 1, 3],
            "at": [day(2), day(2), day(2), day(6), day(6), day(6)],
        }
    )
    lookup = FeatureLookup("dev.fs.stock", ["shop", "item"], timestamp_lookup_key="at")
    assert column(ws, df, [lookup], "qty") == [10, 20, 30, 35, None, None]


def test_two_lookups_from_two_tables(ws: Workspace) -> None:
    df = labels([1, 2, 1], [day(6), day(4), day(1)])
    built = ws.features.create_training_set(df, [spend_asof(), FeatureLookup(PROFILE, "cid")], label="y")
    assert built.feature_columns == ["spend", "plan"]
    assert built.load_df().select(["cid", "spend", "plan"]).to_pylist() == [
        {"cid": 1, "spend": 51.0, "plan": "free"},
        {"cid": 2, "spend": 32.0, "plan": "plus"},
        {"cid": 1, "spend": 11.0, "plan": "free"},
    ]
    assert built.table_versions == {SPEND: 0, PROFILE: 0}


def test_rename_outputs_feature_names_and_exclude_columns(ws: Workspace) -> None:
    ws.features.write_table(
        PROFILE,
        pa.table({"customer_id": [1, 2], "plan": ["pro", "plus"], "region": ["eu", "us"]}),
        evolve_schema=True,
    )
    df = labels([2, 1], [day(4), day(9)])
    subset = FeatureLookup(PROFILE, "cid", feature_names=["region"])
    renamed = spend_asof(rename_outputs={"spend": "spend_asof"})
    built = ws.features.create_training_set(df, [renamed, subset], label="y", exclude_columns=["cid", "at"])
    out = built.load_df()
    assert out.column_names == ["y", "spend_asof", "region"]
    assert out.to_pylist() == [
        {"y": 0, "spend_asof": 32.0, "region": "us"},
        {"y": 1, "spend_asof": 91.0, "region": "eu"},
    ]
    assert built.feature_columns == ["spend_asof", "region"]
    assert built.feature_spec()["lookups"][1]["features"] == ["region"]
    assert built.feature_spec()["exclude_columns"] == ["cid", "at"]

    # a renamed output can be excluded too, and the same table can be looked up twice under two names
    twice = ws.features.create_training_set(
        df,
        [spend_asof(), spend_asof(rename_outputs={"spend": "spend_2d"}, lookback_window=timedelta(days=2))],
        label="y",
        exclude_columns=["spend"],
    )
    assert twice.load_df().column_names == ["cid", "at", "y", "spend_2d"]
    assert twice.load_df().column("spend_2d").to_pylist() == [32.0, 91.0]
    assert twice.feature_columns == ["spend_2d"]
    with pytest.raises(InvalidParameter, match="exclude_columns names typo"):
        ws.features.create_training_set(df, [spend_asof()], label="y", exclude_columns=["typo"])


def test_time_zones_compare_instants(ws: Workspace) -> None:
    plus5 = timezone(timedelta(hours=5))
    ws.features.create_table(
        "dev.fs.naive",  # naive = UTC: rows at 10:00 and 12:00 UTC
        primary_keys="k",
        timestamp_key="ts",
        df=pa.table({"k": [1, 1], "ts": [day(1, 10), day(1, 12)], "v": [10.0, 12.0]}),
    )
    # 16:30+05:00 is 11:30 UTC (the 10:00 row); 17:00+05:00 is 12:00 UTC (the 12:00 row, inclusive)
    aware_at = [datetime(2026, 1, 1, 16, 30, tzinfo=plus5), datetime(2026, 1, 1, 17, tzinfo=plus5)]
    df = pa.table({"k": [1, 1], "at": pa.array(aware_at, pa.timestamp("us", tz="+05:00"))})
    built = ws.features.create_training_set(
        df, [FeatureLookup("dev.fs.naive", "k", timestamp_lookup_key="at")], None
    )
    out = built.load_df()
    assert out.column("v").to_pylist() == [10.0, 12.0]
    assert out.column("at").to_pylist() == aware_at  # the same instants

    aware_ts = [datetime(2026, 1, 1, 15, tzinfo=plus5), datetime(2026, 1, 1, 17, tzinfo=plus5)]
    ws.features.create_table(
        "dev.fs.aware",  # rows at 15:00+05:00 = 10:00 UTC and 17:00+05:00 = 12:00 UTC
        primary_keys="k",
        timestamp_key="ts",
        df=pa.table(
            {"k": [1, 1], "ts": pa.array(aware_ts, pa.timestamp("us", tz="+05:00")), "v": [10.0, 12.0]}
        ),
    )
    naive = pa.table({"k": [1, 1, 1], "at": [day(1, 9), day(1, 11), day(1, 12)]})  # taken as UTC
    lookup = FeatureLookup("dev.fs.aware", "k", timestamp_lookup_key="at")
    assert column(ws, naive, [lookup], "v") == [None, 10.0, 12.0]
    bounded = dataclasses.replace(lookup, lookback_window=timedelta(minutes=30))
    assert column(ws, naive, [bounded], "v") == [None, None, 12.0]


def test_without_timestamps_it_is_a_plain_join(ws: Workspace) -> None:
    df = pa.table({"cid": [2, 9, 1, 2]})
    assert column(ws, df, [FeatureLookup(PROFILE, "cid")], "plan") == ["plus", None, "free", "plus"]


def test_timestamped_table_without_timestamp_lookup_takes_each_keys_newest_row(ws: Workspace) -> None:
    df = pa.table({"cid": [1, 2, 3, 1]})
    assert column(ws, df, [FeatureLookup(SPEND, "cid")], "spend") == [91.0, 32.0, None, 91.0]
    ws.features.write_table(SPEND, pa.table({"customer_id": [2], "ts": [day(2)], "spend": [22.0]}))  # older
    assert column(ws, df, [FeatureLookup(SPEND, "cid")], "spend") == [91.0, 32.0, None, 91.0]


# --- reproducibility ---------------------------------------------------------------------------


def test_training_set_is_pinned_to_the_table_versions(ws: Workspace) -> None:
    df = labels([1, 2, 1, 3], [day(6), day(4), day(9), day(9)])
    lookups = [
        spend_asof(default_values={"spend": 0.0}),
        FeatureLookup(PROFILE, "cid", rename_outputs={"plan": "p"}),
    ]
    built = ws.features.create_training_set(df, lookups, label="y")
    first = built.load_df()
    first_bytes = ipc_bytes(first)
    assert first.column("spend").to_pylist() == [51.0, 32.0, 91.0, 0.0]

    ws.features.write_table(
        SPEND,
        pa.table({"customer_id": [1, 2, 3], "ts": [day(5), day(4), day(1)], "spend": [-5.0, -4.0, -3.0]}),
    )
    ws.features.write_table(PROFILE, pa.table({"customer_id": [1], "plan": ["gold"]}))
    ws.tables.write(
        SPEND, pa.table({"customer_id": [1], "ts": [day(1)], "spend": [1000.0]}), mode="overwrite"
    )
    assert ws.features.get_table(SPEND).version == 2 and ws.features.get_table(PROFILE).version == 1

    again = built.load_df()
    assert again.equals(first) and ipc_bytes(again) == first_bytes
    assert built.table_versions == {SPEND: 0, PROFILE: 0}
    spec = built.feature_spec()
    assert [(lk["table_name"], lk["table_version"]) for lk in spec["lookups"]] == [(SPEND, 0), (PROFILE, 0)]
    assert spec["lookups"][0]["default_values"] == {"spend": 0.0} and spec["lookups"][1]["outputs"] == ["p"]

    fresh = ws.features.create_training_set(df, lookups, label="y")  # a new set sees the new data
    assert fresh.table_versions == {SPEND: 2, PROFILE: 1}
    assert fresh.load_df().column("spend").to_pylist() == [1000.0, 0.0, 1000.0, 0.0]
    assert fresh.load_df().column("p").to_pylist() == ["gold", "plus", "gold", None]


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lookup", "label", "message"),
    [
        (FeatureLookup(SPEND, "cid", feature_names=["spend", "nope"]), "y", r"unknown feature\(s\) nope"),
        (FeatureLookup(SPEND, "cid", rename_outputs={"nope": "x"}), "y", r"unknown feature\(s\) nope"),
        (FeatureLookup(SPEND, "cid", default_values={"nope": 1}), "y", r"unknown feature\(s\) nope"),
        (
            FeatureLookup(SPEND, "cid", feature_names=[], default_values={"spend": 1.0}),
            "y",
            r"unknown feature\(s\) spend",
        ),
        (
            FeatureLookup(SPEND, "cid", rename_outputs={"spend": "y"}),
            "y",
            r"output\(s\) y from 'dev\.fs\.spend' collide",
        ),
        (FeatureLookup(SPEND, "customer_id"), "y", r"customer_id.*not columns of the input"),
        (FeatureLookup(SPEND, ["cid", "y"]), "y", r"2 key\(s\).*customer_id"),
        (FeatureLookup(PROFILE, "cid", timestamp_lookup_key="at"), "y", "has no timestamp key"),
        (FeatureLookup(SPEND, "cid", timestamp_lookup_key="when"), "y", "'when'.*not an input column"),
        (FeatureLookup(SPEND, "cid"), "churned", r"Label column\(s\) churned"),
    ],
    ids=[
        "unknown-feature",
        "rename-unknown",
        "default-unknown",
        "default-not-selected",
        "collision",
        "key-not-in-input",
        "wrong-key-count",
        "timestamp-on-plain-table",
        "timestamp-not-in-input",
        "label-missing",
    ],
)
def test_invalid_training_sets_are_refused(
    ws: Workspace, lookup: FeatureLookup, label: str, message: str
) -> None:
    with pytest.raises(InvalidParameter, match=message):
        ws.features.create_training_set(labels([1], [day(1)]), [lookup], label=label)


def test_two_lookups_with_the_same_output_collide(ws: Workspace) -> None:
    with pytest.raises(InvalidParameter, match=r"spend from 'dev\.fs\.spend' collide"):
        ws.features.create_training_set(
            labels([1], [day(1)]), [spend_asof(), FeatureLookup(SPEND, "cid")], "y"
        )


def test_invalid_lookback_windows_are_refused_at_construction() -> None:
    with pytest.raises(InvalidParameter, match="needs timestamp_lookup_key"):
        FeatureLookup(SPEND, "cid", lookback_window=timedelta(days=1))
    with pytest.raises(InvalidParameter, match=r"timedelta >= 0"):
        FeatureLookup(SPEND, "cid", timestamp_lookup_key="at", lookback_window=timedelta(seconds=-1))
    with pytest.raises(InvalidParameter, match=r"timedelta >= 0"):
        FeatureLookup(SPEND, "cid", timestamp_lookup_key="at", lookback_window=3600)  # type: ignore[arg-type]


# --- grants ------------------------------------------------------------------------------------


def test_training_sets_and_writes_need_grants(workspace: Workspace) -> None:
    workspace.schemas.create("dev.fs")
    workspace.features.create_table(
        SPEND,
        primary_keys="customer_id",
        timestamp_key="ts",
        df=pa.table({"customer_id": [1, 1], "ts": [day(1), day(5)], "spend": [11.0, 51.0]}),
    )
    workspace.principals.create("alice")
    workspace.grants.grant("USE_CATALOG", "catalog", "dev", "alice")
    workspace.grants.grant("USE_SCHEMA", "schema", "dev.fs", "alice")
    alice = workspace.as_principal("alice")
    df = labels([1, 1], [day(3), day(6)])

    with pytest.raises(PrivilegeMissing, match=r"SELECT on table 'dev\.fs\.spend'") as denied:
        alice.features.create_training_set(df, [spend_asof()], label="y")
    assert denied.value.privilege == "SELECT"

    by_admin = workspace.features.create_training_set(df, [spend_asof()], label="y")
    assert by_admin.load_df().column("spend").to_pylist() == [11.0, 51.0]
    assert {f.name for f in dataclasses.fields(by_admin)} >= {"tables", "plans"}
    as_alice = dataclasses.replace(by_admin, tables=alice.tables)
    with pytest.raises(PrivilegeMissing, match="SELECT") as denied:
        as_alice.load_df()
    assert denied.value.privilege == "SELECT"

    workspace.grants.grant("SELECT", "table", SPEND, "alice")
    assert as_alice.load_df().equals(by_admin.load_df())
    assert (
        alice.features.create_training_set(df, [spend_asof()], label="y").load_df().equals(by_admin.load_df())
    )

    new_row = pa.table({"customer_id": [2], "ts": [day(2)], "spend": [22.0]})
    with pytest.raises(PrivilegeMissing, match="MODIFY") as denied:
        alice.features.write_table(SPEND, new_row)
    assert denied.value.privilege == "MODIFY"
    assert workspace.features.get_table(SPEND).version == 0
    workspace.grants.grant("MODIFY", "table", SPEND, "alice")
    assert alice.features.write_table(SPEND, new_row).version == 1
    assert workspace.features.read_table(SPEND).num_rows == 3


# --- the fast as-of path answers exactly as the DuckDB query -----------------------------------


def both_paths(
    ws: Workspace, df: pa.Table, lookups: list[FeatureLookup], monkeypatch: pytest.MonkeyPatch
) -> pa.Table:
    """The training set through the fast path alone, checked equal (rows, values, types) to the
    same training set through DuckDB alone."""
    built = ws.features.create_training_set(df, lookups, label=None)

    def refuse(*args: Any, **kwargs: Any) -> pa.Table:
        raise AssertionError("the fast path declined this training set")

    with monkeypatch.context() as patched:
        patched.setattr(training, "_query", refuse)
        fast = built.load_df()
    with monkeypatch.context() as patched:
        patched.setattr(training, "_FAST_PATH", False)
        duck = built.load_df()
    assert fast.schema.equals(duck.schema)
    assert fast.equals(duck)
    assert fast.select(df.column_names).equals(built.df)  # every input row, in input order
    return fast


def random_stock(ws: Workspace, rng: Any) -> None:
    """dev.fs.stock: (store, sku) strings + ts, written in two merges, in no particular order."""
    stores, skus = ["s1", "s2", "s3", "s-4"], [f"sku{i}" for i in range(6)]
    cells = {
        (str(rng.choice(stores)), str(rng.choice(skus)), int(rng.integers(0, 60 * 24))) for _ in range(400)
    }
    rows = sorted(cells, key=lambda c: (c[2] * 7919 + hash(c[:2])) % 1009)  # shuffled, reproducibly
    table = pa.table(
        {
            "store": [c[0] for c in rows],
            "sku": [c[1] for c in rows],
            "ts": [day(1) + timedelta(hours=c[2]) for c in rows],
            "qty": [int(rng.integers(0, 100)) for _ in rows],
            "price": [None if rng.random() < 0.1 else float(rng.normal()) for _ in rows],
            "note": [None if rng.random() < 0.2 else f"n{i}" for i in range(len(rows))],
        }
    )
    half = table.num_rows // 2
    ws.features.create_table(
        "dev.fs.stock", primary_keys=["store", "sku"], timestamp_key="ts", df=table.slice(0, half)
    )
    ws.features.write_table("dev.fs.stock", table.slice(half))


def test_fast_path_equals_duckdb_on_multi_column_string_keys(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(3)
    random_stock(ws, rng)
    n = 1500
    plus5 = timezone(timedelta(hours=5))
    at = [
        None
        if rng.random() < 0.03
        else datetime(2026, 1, 1, tzinfo=UTC)
        + timedelta(hours=int(rng.integers(-24, 70 * 24)), minutes=int(rng.choice([0, 0, 30])))
        for _ in range(n)
    ]
    df = pa.table(
        {
            "shop": [
                None if rng.random() < 0.02 else str(rng.choice(["s1", "s2", "s3", "s-4", "s9"]))
                for _ in range(n)
            ],
            "item": [str(rng.choice([f"sku{i}" for i in range(7)])) for _ in range(n)],  # sku6 is absent
            "at": pa.array(
                [None if t is None else t.astimezone(plus5) for t in at], pa.timestamp("us", tz="+05:00")
            ),
        }
    )
    lookup = FeatureLookup("dev.fs.stock", ["shop", "item"], timestamp_lookup_key="at")
    windows = [None, timedelta(0), timedelta(hours=6), timedelta(days=2)]
    lookups = [
        dataclasses.replace(
            lookup,
            lookback_window=w,
            rename_outputs={f: f"{f}_{i}" for f in ("qty", "price", "note")},
            default_values={"qty": -1, "note": "none"} if i % 2 else None,
        )
        for i, w in enumerate(windows)
    ]
    out = both_paths(ws, df, lookups, monkeypatch)
    assert out.column("qty_0").null_count < n  # some hits
    assert out.column("qty_1").to_pylist().count(-1) > 0  # some misses, filled by the default
    assert out.column("note_3").null_count > 0  # stored NULLs stay NULL under a default


def test_fast_path_equals_duckdb_without_timestamps_and_for_the_newest_row(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(5)
    random_stock(ws, rng)
    ws.features.create_table(
        "dev.fs.shops",  # no timestamp key, string key
        primary_keys="store",
        df=pa.table({"store": ["s2", "s1", "s3"], "city": ["Oslo", None, "Rome"], "size": [3, 1, 2]}),
    )
    n = 500
    df = pa.table(
        {
            "shop": [str(rng.choice(["s1", "s2", "s3", "s-4", "s9"])) for _ in range(n)],
            "item": [str(rng.choice([f"sku{i}" for i in range(7)])) for _ in range(n)],
            "cid": pa.array(
                [None if rng.random() < 0.05 else int(rng.integers(0, 4)) for _ in range(n)], pa.int32()
            ),
            # pandas' unit, nanoseconds: the training set keeps microseconds
            "at": pa.array(
                (
                    np.datetime64("2026-01-01", "ns")
                    + rng.integers(0, 12 * 86_400 * 10**9, n).astype("timedelta64[ns]")
                ),
                pa.timestamp("ns"),
            ),
        }
    )
    lookups = [
        FeatureLookup("dev.fs.shops", "shop", default_values={"size": 0}),
        FeatureLookup("dev.fs.stock", ["shop", "item"], feature_names=["qty"]),  # each key's newest row
        spend_asof(lookback_window=timedelta(days=3)),  # int32 keys against int64, ns against us
        FeatureLookup(PROFILE, "cid"),  # int keys, no timestamp key
    ]
    out = both_paths(ws, df, lookups, monkeypatch)
    assert set(out.column("city").to_pylist()) == {"Oslo", "Rome", None}
    assert out.column("spend").null_count < n


def test_fast_path_equals_duckdb_on_the_hand_built_cases(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.features.write_table(
        SPEND, pa.table({"customer_id": [2], "ts": [day(7)], "spend": pa.array([None], pa.float64())})
    )
    at = [
        day(1) - timedelta(microseconds=1),
        day(1),
        day(2),
        day(5),
        day(5, 1),
        day(7),
        day(9),
        day(30),
        None,
    ]
    df = labels([1, 1, 2, 1, 1, 2, 1, 1, None] * 2, at * 2, tz="Asia/Tokyo")
    lookups = [
        spend_asof(),
        spend_asof(
            rename_outputs={"spend": "exact"}, lookback_window=timedelta(0), default_values={"spend": 0}
        ),
        spend_asof(
            rename_outputs={"spend": "week"},
            lookback_window=timedelta(days=7),
            default_values={"spend": -1.5},
        ),
        FeatureLookup(SPEND, "cid", rename_outputs={"spend": "newest"}),
        FeatureLookup(PROFILE, "cid", default_values={"plan": "none"}),
    ]
    out = both_paths(ws, df, lookups, monkeypatch)
    assert out.column("spend").to_pylist()[:9] == [None, 11.0, None, 51.0, 51.0, None, 91.0, 91.0, None]
    assert out.column("exact").to_pylist()[:9] == [0.0, 11.0, 0.0, 51.0, 0.0, None, 91.0, 0.0, 0.0]


def test_what_the_fast_path_does_not_handle_goes_through_duckdb(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    query = training._query

    def counted(*args: Any, **kwargs: Any) -> pa.Table:
        calls.append(1)
        return query(*args, **kwargs)

    monkeypatch.setattr(training, "_query", counted)
    ws.features.create_table(
        "dev.fs.rates", primary_keys="rate", df=pa.table({"rate": [0.5, 1.5], "band": ["low", "high"]})
    )
    floats = pa.table({"r": [1.5, 0.5, 2.0]})  # float keys: DuckDB's equality, not the fast path's
    assert column(ws, floats, [FeatureLookup("dev.fs.rates", "r")], "band") == ["high", "low", None]
    assert len(calls) == 1
    dated = pa.table({"cid": [1, 1], "at": pa.array([day(5).date(), day(6).date()], pa.date32())})
    assert column(ws, dated, [spend_asof()], "spend") == [51.0, 51.0]  # date input timestamps: DuckDB
    assert len(calls) == 2
    # an appended row repeats (customer 1, day 5): no longer a feature table's shape
    ws.tables.write(SPEND, pa.table({"customer_id": [1], "ts": [day(5)], "spend": [52.0]}))
    assert column(ws, labels([2], [day(4)]), [spend_asof()], "spend") == [32.0]
    assert len(calls) == 3


def test_fast_path_equals_duckdb_on_keys_and_times_that_spread_far(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(11)
    # ids far apart (no offset coding) and five centuries of timestamps: the packed key would not
    # fit in 62 bits with the times as offsets, so they are ranked
    ids = [int(i) for i in rng.choice(2**60, size=300, replace=False)]
    years = [int(y) for y in rng.integers(1700, 2250, size=2000)]
    cells = sorted({(int(rng.choice(ids)), datetime(y, 1, 1, int(rng.integers(0, 24)))) for y in years})
    ws.features.create_table(
        "dev.fs.far",
        primary_keys=["id", "region"],
        timestamp_key="ts",
        df=pa.table(
            {
                "id": [c[0] for c in cells],
                "region": [c[0] % 3 for c in cells],
                "ts": [c[1] for c in cells],
                "v": list(range(len(cells))),
            }
        ),
    )
    n = 1000
    df = pa.table(
        {
            "id": [int(rng.choice(ids)) if rng.random() < 0.9 else 5 for _ in range(n)],
            "region": [int(rng.integers(0, 3)) for _ in range(n)],
            "at": [datetime(int(y), 6, 1) for y in rng.integers(1690, 2260, size=n)],
        }
    )
    lookups = [
        FeatureLookup("dev.fs.far", ["id", "region"], timestamp_lookup_key="at"),
        FeatureLookup(
            "dev.fs.far",
            ["id", "region"],
            timestamp_lookup_key="at",
            lookback_window=timedelta(days=3650),
            rename_outputs={"v": "v10"},
        ),
    ]
    out = both_paths(ws, df, lookups, monkeypatch)
    assert 0 < out.column("v").null_count < n and out.column("v10").null_count > out.column("v").null_count
    monkeypatch.setattr(asof, "RADIX_LIMIT", 4)  # combined key codes renumbered after each column
    assert both_paths(ws, df, lookups, monkeypatch).equals(out)


def test_fast_path_equals_duckdb_on_date_binary_and_boolean_keys(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws.features.create_table(
        "dev.fs.mixed",
        primary_keys=["d", "b", "flag"],
        timestamp_key="ts",
        df=pa.table(
            {
                "d": pa.array([day(1).date(), day(1).date(), day(2).date(), day(2).date()], pa.date32()),
                "b": pa.array([b"x", b"y", b"x", b"x"], pa.binary()),
                "flag": [True, False, True, True],
                "ts": [day(3), day(3), day(3), day(6)],
                "v": [1, 2, 3, 4],
            }
        ),
    )
    ws.features.create_table(
        "dev.fs.byday",
        primary_keys="d",
        df=pa.table({"d": pa.array([day(1).date(), day(3).date()], pa.date32()), "w": ["one", "three"]}),
    )
    df = pa.table(
        {
            "d": pa.array([day(d).date() for d in (1, 1, 2, 2, 3, 2)], pa.date32()),
            "b": pa.array([b"x", b"y", b"x", b"x", b"x", b"z"], pa.large_binary()),
            "flag": [True, False, True, True, True, True],
            "at": [day(4), day(2), day(5), day(7), day(7), day(7)],
        }
    )
    lookups = [
        FeatureLookup("dev.fs.mixed", ["d", "b", "flag"], timestamp_lookup_key="at"),
        FeatureLookup("dev.fs.byday", "d"),
    ]
    out = both_paths(ws, df, lookups, monkeypatch)
    assert out.column("v").to_pylist() == [1, None, 3, 4, None, None]
    assert out.column("w").to_pylist() == ["one", "one", None, None, "three", None]
