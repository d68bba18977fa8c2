"""Merges: upsert semantics, deletes, key validation, and concurrent writers retried on conflict."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from lakestack import Expectation, Workspace
from lakestack.errors import ExpectationFailed, InvalidParameter, SchemaMismatch

TABLE = "dev.raw.customers"


@pytest.fixture
def ws(sqlite_workspace: Workspace) -> Workspace:
    sqlite_workspace.schemas.create("dev.raw")
    sqlite_workspace.tables.create(
        TABLE,
        data=pa.table({"id": [1, 2, 3], "name": ["ann", "bob", "cy"], "deleted": [False, False, False]}),
    )
    return sqlite_workspace


def rows(ws: Workspace, name: str = TABLE, **read: Any) -> list[dict[str, Any]]:
    return sorted(ws.tables.read(name, **read).to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def snapshot(ws: Workspace, name: str = TABLE) -> tuple[int, list[dict[str, Any]]]:
    return ws.tables.get(name).version, rows(ws, name)


# --- upsert semantics --------------------------------------------------------------------


def test_merge_updates_matches_inserts_the_rest_and_keeps_other_rows(ws: Workspace) -> None:
    result = ws.tables.merge(
        TABLE, pa.table({"id": [2, 4], "name": ["BOB", "dee"], "deleted": [False, False]}), keys=["id"]
    )

    assert result.version == 1
    assert result.rows_written == 2
    assert result.metrics["num_target_rows_updated"] == 1
    assert result.metrics["num_target_rows_inserted"] == 1
    assert rows(ws) == [
        {"id": 1, "name": "ann", "deleted": False},
        {"id": 2, "name": "BOB", "deleted": False},
        {"id": 3, "name": "cy", "deleted": False},
        {"id": 4, "name": "dee", "deleted": False},
    ]
    assert ws.tables.history(TABLE)[0].operation == "MERGE"
    assert ws.tables.history(TABLE)[0].principal == "admin"


def test_merging_the_same_data_twice_is_idempotent(ws: Workspace) -> None:
    data = pa.table({"id": [3, 9], "name": ["cy2", "nine"], "deleted": [False, False]})
    ws.tables.merge(TABLE, data, keys=["id"])
    once = rows(ws)
    ws.tables.merge(TABLE, data, keys=["id"])

    assert rows(ws) == once
    assert len(once) == 4


def test_partial_upsert_keeps_unsent_columns_of_matched_rows(ws: Workspace) -> None:
    ws.tables.merge(TABLE, pa.table({"name": ["ANN", "eve"], "id": [1, 5]}), keys=["id"])

    assert rows(ws) == [
        {"id": 1, "name": "ANN", "deleted": False},  # updated: `deleted` was not sent, so it is kept
        {"id": 2, "name": "bob", "deleted": False},
        {"id": 3, "name": "cy", "deleted": False},
        {"id": 5, "name": "eve", "deleted": None},  # inserted: unsent columns are null
    ]


def test_merge_on_a_composite_key_matches_on_every_key_column(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.schemas.create("dev.raw")
    ws.tables.create(
        "dev.raw.daily", data=pa.table({"day": [1, 1, 2], "shop": ["a", "b", "a"], "n": [10, 20, 30]})
    )

    ws.tables.merge(
        "dev.raw.daily", pa.table({"day": [1, 2], "shop": ["b", "b"], "n": [21, 99]}), keys=["day", "shop"]
    )

    assert rows(ws, "dev.raw.daily") == [
        {"day": 1, "shop": "a", "n": 10},
        {"day": 1, "shop": "b", "n": 21},
        {"day": 2, "shop": "a", "n": 30},
        {"day": 2, "shop": "b", "n": 99},
    ]


def test_merge_with_evolve_schema_adds_the_new_column(ws: Workspace) -> None:
    ws.tables.merge(
        TABLE,
        pa.table({"id": [1, 7], "name": ["ann", "gus"], "tier": ["gold", "silver"]}),
        keys=["id"],
        evolve_schema=True,
    )

    assert "tier" in ws.tables.get(TABLE).schema.names
    assert rows(ws) == [
        {"id": 1, "name": "ann", "deleted": False, "tier": "gold"},
        {"id": 2, "name": "bob", "deleted": False, "tier": None},
        {"id": 3, "name": "cy", "deleted": False, "tier": None},
        {"id": 7, "name": "gus", "deleted": None, "tier": "silver"},
    ]


def test_merge_with_a_new_column_without_evolve_schema_is_refused(ws: Workspace) -> None:
    before = snapshot(ws)
    with pytest.raises(SchemaMismatch, match="tier"):
        ws.tables.merge(TABLE, pa.table({"id": [1], "tier": ["gold"]}), keys=["id"])
    assert snapshot(ws) == before


# --- deletes -----------------------------------------------------------------------------


def test_delete_condition_deletes_matched_rows_and_upserts_the_others(ws: Workspace) -> None:
    data = pa.table({"id": [1, 2, 8], "name": ["ann", "BOB", "ivy"], "deleted": [True, False, False]})

    result = ws.tables.merge(TABLE, data, keys=["id"], delete_condition="s.deleted")

    assert result.metrics["num_target_rows_deleted"] == 1
    assert rows(ws) == [
        {"id": 2, "name": "BOB", "deleted": False},
        {"id": 3, "name": "cy", "deleted": False},
        {"id": 8, "name": "ivy", "deleted": False},
    ]
    changes = ws.tables.changes(TABLE, starting_version=result.version).to_pylist()
    assert {(c["id"], c["_change_type"]) for c in changes} >= {(1, "delete"), (8, "insert")}


def test_delete_condition_may_compare_source_and_target(ws: Workspace) -> None:
    data = pa.table({"id": [1, 2], "name": ["ann", "zed"], "deleted": [True, True]})

    # Delete only when the name still matches; otherwise the change is an update.
    ws.tables.merge(TABLE, data, keys=["id"], delete_condition="s.deleted AND s.name = t.name")

    assert rows(ws) == [
        {"id": 2, "name": "zed", "deleted": True},
        {"id": 3, "name": "cy", "deleted": False},
    ]


def test_a_tombstone_for_an_unknown_key_is_not_inserted(ws: Workspace) -> None:
    before = rows(ws)
    data = pa.table({"id": [42], "name": ["ghost"], "deleted": [True]})

    result = ws.tables.merge(TABLE, data, keys=["id"], delete_condition="s.deleted")

    assert result.metrics["num_target_rows_inserted"] == 0
    assert [r["id"] for r in rows(ws)] == [r["id"] for r in before]


def test_invalid_delete_condition_is_invalid_parameter_and_leaves_table(ws: Workspace) -> None:
    before = snapshot(ws)
    with pytest.raises(InvalidParameter, match="no_such_column"):
        ws.tables.merge(
            TABLE, pa.table({"id": [1], "name": ["x"]}), keys=["id"], delete_condition="s.no_such_column"
        )
    assert snapshot(ws) == before


# --- keys --------------------------------------------------------------------------------


def test_merge_needs_at_least_one_key(ws: Workspace) -> None:
    before = snapshot(ws)
    with pytest.raises(InvalidParameter, match="at least one key"):
        ws.tables.merge(TABLE, pa.table({"id": [1], "name": ["x"]}), keys=[])
    assert snapshot(ws) == before


def test_merge_key_that_is_not_a_column_is_schema_mismatch(ws: Workspace) -> None:
    before = snapshot(ws)
    with pytest.raises(SchemaMismatch, match="customer_id"):
        ws.tables.merge(TABLE, pa.table({"id": [1], "name": ["x"]}), keys=["customer_id"])
    assert snapshot(ws) == before


def test_merge_data_without_the_key_column_is_refused(ws: Workspace) -> None:
    before = snapshot(ws)
    with pytest.raises(SchemaMismatch, match="'id'"):
        ws.tables.merge(TABLE, pa.table({"name": ["keyless"]}), keys=["id"])
    assert snapshot(ws) == before


def test_merge_data_with_null_keys_is_refused(ws: Workspace) -> None:
    before = snapshot(ws)
    with pytest.raises(SchemaMismatch, match="null"):
        ws.tables.merge(TABLE, pa.table({"id": [1, None], "name": ["x", "y"]}), keys=["id"])
    assert snapshot(ws) == before


@pytest.mark.parametrize("ids", [[7, 7], [1, 1]], ids=["new-key", "existing-key"])
def test_merge_data_with_duplicate_keys_is_refused(ws: Workspace, ids: list[int]) -> None:
    before = snapshot(ws)
    with pytest.raises(InvalidParameter, match="more than once"):
        ws.tables.merge(TABLE, pa.table({"id": ids, "name": ["x", "y"]}), keys=["id"])
    assert snapshot(ws) == before


def test_merge_runs_expectations_before_touching_the_table(ws: Workspace) -> None:
    before = snapshot(ws)
    with pytest.raises(ExpectationFailed, match="named"):
        ws.tables.merge(
            TABLE,
            pa.table(
                {"id": [1], "name": [None]}, schema=pa.schema([("id", pa.int64()), ("name", pa.string())])
            ),
            keys=["id"],
            expectations=[Expectation("named", "name IS NOT NULL", "fail")],
        )
    assert snapshot(ws) == before


# --- concurrency -------------------------------------------------------------------------
#
# Four spawned processes each merge 50 disjoint keys into one table (200 upserts of rows seeded
# with empty values). A Delta merge reads the whole table and rewrites the file holding its key,
# so two merges that overlap in time conflict even though their keys differ. The workers are
# released together by a barrier (the plain-deltalake ones even read the same first snapshot
# before it), so collisions are certain, not a matter of timing luck.

WORKERS = 4
MERGES = 50
# A checkpoint every 10 commits keeps each (re)read of the 200-version log short: the test's
# cost is commits and conflicts, not replaying JSON.
CONFIG = {"delta.checkpointInterval": "10"}
SCHEMA = pa.schema([("id", pa.int64()), ("worker", pa.int64()), ("seq", pa.int64())])
_barrier: Any = None


def _key(worker: int, i: int) -> int:
    return worker * 1000 + i


ALL_KEYS = sorted(_key(w, i) for w in range(WORKERS) for i in range(MERGES))


def _seed() -> pa.Table:
    empty = [None] * len(ALL_KEYS)
    return pa.table({"id": ALL_KEYS, "worker": empty, "seq": empty}, schema=SCHEMA)


def _upsert(worker: int, i: int) -> pa.Table:
    return pa.table({"id": [_key(worker, i)], "worker": [worker], "seq": [i]}, schema=SCHEMA)


def _init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier
    import deltalake  # noqa: F401  (imports happen once per process, before any timed work)

    import lakestack  # noqa: F401


def _lakestack_merges(path: str, table: str, worker: int) -> int:
    ws = Workspace.open(path)
    try:
        _barrier.wait(timeout=120)
        for i in range(MERGES):
            ws.tables.merge(table, _upsert(worker, i), keys=["id"])
    finally:
        ws.close()
    return MERGES


def _plain_merges(uri: str, worker: int) -> tuple[int, int]:
    """The same merges with plain deltalake and no retry: (committed, CommitFailedError count)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import CommitFailedError

    table = DeltaTable(uri)  # all four workers start from the same snapshot
    _barrier.wait(timeout=120)
    committed = failed = 0
    for i in range(MERGES):
        try:
            (
                table.merge(_upsert(worker, i), predicate="t.id = s.id", source_alias="s", target_alias="t")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            committed += 1
        except CommitFailedError:
            failed += 1
        table = DeltaTable(uri)
    return committed, failed


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """Four spawned worker processes sharing a barrier, reused by the concurrency tests."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    with ProcessPoolExecutor(
        WORKERS, mp_context=ctx, initializer=_init_worker, initargs=(barrier,)
    ) as executor:
        yield executor


def _run_concurrent_merges(ws: Workspace, pool: ProcessPoolExecutor) -> None:
    name = "dev.load.events"
    ws.schemas.create("dev.load")
    ws.tables.create(name, data=_seed(), properties=CONFIG)
    futures = [pool.submit(_lakestack_merges, str(ws.folder), name, w) for w in range(WORKERS)]
    assert [f.result(timeout=300) for f in futures] == [MERGES] * WORKERS

    table = ws.tables.read(name)
    assert sorted(table.column("id").to_pylist()) == ALL_KEYS  # every row present, none twice
    assert {(r["id"], r["worker"], r["seq"]) for r in table.to_pylist()} == {
        (_key(w, i), w, i) for w in range(WORKERS) for i in range(MERGES)
    }  # and no upsert was lost
    assert ws.tables.get(name).version == WORKERS * MERGES
    merges = [h for h in ws.tables.history(name) if h.operation == "MERGE"]
    assert len(merges) == WORKERS * MERGES
    assert {h.principal for h in merges} == {"admin"}
    assert sum(int(h.metrics.get("num_target_rows_updated", 0)) for h in merges) == WORKERS * MERGES
    # Every process wrote its audit rows to the shared metastore; none was lost or refused.
    audited = ws.audit.list(action="tables.merge", securable=name, limit=10_000)
    assert len(audited) == WORKERS * MERGES
    assert all(a.allowed for a in audited)


@pytest.mark.slow
@pytest.mark.xdist_group("merge_concurrency")  # one worker pool, not one per xdist worker
def test_concurrent_merges_with_sqlite_metastore_all_land_exactly_once(
    tmp_path: Path, pool: ProcessPoolExecutor
) -> None:
    ws = Workspace.init(tmp_path / "ws")
    try:
        _run_concurrent_merges(ws, pool)
    finally:
        ws.close()


@pytest.mark.slow
@pytest.mark.xdist_group("merge_concurrency")  # one worker pool, not one per xdist worker
@pytest.mark.postgres
def test_concurrent_merges_with_postgres_metastore_all_land_exactly_once(
    tmp_path: Path, postgres_url: str, pool: ProcessPoolExecutor
) -> None:
    ws = Workspace.init(tmp_path / "ws", metastore_url=postgres_url)
    try:
        _run_concurrent_merges(ws, pool)
    finally:
        ws.close()


@pytest.mark.slow
@pytest.mark.xdist_group("merge_concurrency")  # one worker pool, not one per xdist worker
def test_same_workload_with_plain_deltalake_fails_commits(tmp_path: Path, pool: ProcessPoolExecutor) -> None:
    """Why lakestack retries: without it, concurrent merges on disjoint keys fail to commit."""
    from deltalake import DeltaTable, write_deltalake

    uri = str(tmp_path / "plain")
    write_deltalake(uri, _seed(), configuration=CONFIG)
    futures = [pool.submit(_plain_merges, uri, w) for w in range(WORKERS)]
    results = [f.result(timeout=300) for f in futures]
    committed = sum(ok for ok, _ in results)
    failed = sum(bad for _, bad in results)

    assert committed + failed == WORKERS * MERGES
    assert failed >= 1, "plain deltalake merges did not conflict; the workload no longer shows the race"
    # Every failed commit is a lost upsert: only the committed ones reached the table.
    table = DeltaTable(uri).to_pyarrow_table()
    assert table.num_rows == len(ALL_KEYS)
    assert len(ALL_KEYS) - table.column("seq").null_count == committed
