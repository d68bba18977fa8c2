"""Online store lookups: single-key latency through lakestack against the raw client on the same data.

Embedded: `ws.features.online_lookup(name)` (obtained once, as serving does) against a raw
`sqlite3` primary-key SELECT on a table holding the same rows in a sibling file. Redis: the same
lookup object on a Redis-backed workspace against a raw redis-py HGETALL of a hash per key.
Each sample times one lakestack lookup and one anchor lookup back to back (alternating which
goes first) for a random key; the rows report the medians (p50), and `run.py` the p99.
Target: single-key lookup p99 under 1 ms on the embedded store. Publishing is reported too:
a snapshot of N keys against reading the Delta table and bulk-inserting it with sqlite3.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from harness import Row, timed
from lakestack import Workspace
from lakestack.config import OnlineConfig, WorkspaceConfig

# (published keys, lookups per repeat)
SIZES = {"small": (10_000, 2_000), "full": (100_000, 5_000)}
TABLE = "dev.bench.customers"
FEATURES = ["f0", "f1", "f2", "f3", "f4", "segment"]
REDIS_URL = "redis://127.0.0.1:6379/0"


def feature_rows(keys: int, rng: np.random.Generator) -> pa.Table:
    columns: dict[str, Any] = {"customer_id": np.arange(keys, dtype=np.int64)}
    columns |= {f"f{i}": rng.normal(size=keys) for i in range(5)}
    columns["segment"] = pa.array(rng.choice(["free", "plus", "pro", "team"], size=keys))
    return pa.table(columns)


def workspace(folder: Path, online: OnlineConfig, rows: pa.Table) -> Workspace:
    folder.mkdir(parents=True)
    WorkspaceConfig(name="bench", online=online).dump(folder)
    ws = Workspace.init(folder)
    ws.schemas.create("dev.bench")
    ws.features.create_table(TABLE, primary_keys="customer_id", df=rows)
    return ws


def latencies(
    ours: Callable[[int], Any], theirs: Callable[[int], Any], keys: np.ndarray
) -> tuple[list[float], list[float]]:
    """Seconds of each call, paired: both sides look the same key up back to back."""
    mine, plain = [], []
    clock = time.perf_counter
    for index, key in enumerate(keys.tolist()):
        if index % 2:
            start = clock()
            theirs(key)
            middle = clock()
            ours(key)
            end = clock()
            plain.append(middle - start)
            mine.append(end - middle)
        else:
            start = clock()
            ours(key)
            middle = clock()
            theirs(key)
            end = clock()
            mine.append(middle - start)
            plain.append(end - middle)
    return mine, plain


def raw_sqlite(path: Path, rows: pa.Table) -> sqlite3.Connection:
    """The anchor's table: what a person would write by hand for a primary-key lookup."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    names = rows.column_names
    con.execute(f"CREATE TABLE features ({names[0]} INTEGER PRIMARY KEY, {', '.join(names[1:])})")
    marks = ", ".join("?" * len(names))
    con.execute("BEGIN")
    values = zip(*(c.to_pylist() for c in rows.columns), strict=True)
    con.executemany(f"INSERT INTO features VALUES ({marks})", values)  # noqa: S608
    con.execute("COMMIT")
    return con


def redis_available() -> bool:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
        return True
    except redis.RedisError as exc:
        print(f"  Redis at {REDIS_URL} unreachable ({exc}): skipping the Redis rows", file=sys.stderr)
        return False


def check_same(ours: dict[str, Any], theirs: dict[str, Any], key: int) -> None:
    if ours != theirs:
        raise SystemExit(f"key {key}: lakestack returned {ours}, the anchor {theirs}: not the same work")


def run(scale: str, repeats: int) -> list[Row]:
    keys, lookups = SIZES[scale]
    rng = np.random.default_rng(11)
    rows = feature_rows(keys, rng)
    samples = [rng.integers(0, keys, size=lookups) for _ in range(repeats)]
    print(f"  {keys:,} published keys, {lookups:,} lookups x {repeats} repeats per row", file=sys.stderr)
    results: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lakestack-bench-") as tmp:
        ws = workspace(Path(tmp) / "embedded", OnlineConfig(), rows)
        location = ws.tables.get(TABLE).location

        # Publishing: a snapshot of every key, against deltalake + sqlite3 executemany.
        ours_publish, plain_publish = [], []
        for repeat in range(repeats):
            seconds, result = timed(lambda: ws.features.publish_table(TABLE, mode="snapshot"))
            ours_publish.append(seconds)
            raw_path = Path(tmp) / f"raw-{repeat}.db"
            seconds, con = timed(lambda p=raw_path: raw_sqlite(p, DeltaTable(location).to_pyarrow_table()))  # type: ignore[misc]
            plain_publish.append(seconds)
            assert result.rows_written == con.execute("SELECT count(*) FROM features").fetchone()[0] == keys
            con.close()
        results.append(Row(f"publish: snapshot of {keys:,} keys to SQLite", ours_publish, plain_publish, 1.0))

        # Embedded lookups.
        lookup = ws.features.online_lookup(TABLE)
        con = sqlite3.connect(Path(tmp) / "raw-0.db", isolation_level=None)
        select = f"SELECT {', '.join(FEATURES)} FROM features WHERE customer_id = ?"  # noqa: S608
        expected = dict(zip(FEATURES, con.execute(select, (7,)).fetchone(), strict=True))
        check_same(lookup.get_row(7), expected, 7)

        def raw_lookup(key: int) -> Any:
            return con.execute(select, (key,)).fetchone()

        table_ours, table_plain, row_ours, row_plain = [], [], [], []
        for sample in samples:
            mine, plain = latencies(lambda k: lookup.get([{"customer_id": k}]), raw_lookup, sample)
            table_ours += mine
            table_plain += plain
            mine, plain = latencies(lookup.get_row, raw_lookup, sample)
            row_ours += mine
            row_plain += plain
        results.append(
            Row(
                f"lookup: 1 key of {keys:,}, embedded, get() -> Arrow",
                table_ours,
                table_plain,
                p99_target=0.001,
            )
        )
        results.append(
            Row(
                f"lookup: 1 key of {keys:,}, embedded, get_row() -> dict",
                row_ours,
                row_plain,
                p99_target=0.001,
            )
        )
        con.close()
        ws.close()

        if redis_available():
            import redis

            prefix = f"lakestack-bench:{uuid.uuid4().hex[:8]}:"
            client = redis.Redis.from_url(REDIS_URL)
            try:
                rws = workspace(Path(tmp) / "redis", OnlineConfig(url=REDIS_URL, key_prefix=prefix), rows)
                rws.features.publish_table(TABLE, mode="snapshot")
                pipe = client.pipeline(transaction=False)
                for row in rows.to_pylist():
                    pipe.hset(f"{prefix}raw:{row['customer_id']}", mapping={f: row[f] for f in FEATURES})
                pipe.execute()
                rlookup = rws.features.online_lookup(TABLE)
                raw = client.hgetall(f"{prefix}raw:7")
                decoded = {f: raw[f.encode()].decode() for f in FEATURES}
                check_same({f: str(v) for f, v in rlookup.get_row(7).items()}, decoded, 7)

                def raw_hgetall(key: int) -> Any:
                    return client.hgetall(f"{prefix}raw:{key}")

                redis_ours, redis_plain = [], []
                for sample in samples:
                    mine, plain = latencies(rlookup.get_row, raw_hgetall, sample)
                    redis_ours += mine
                    redis_plain += plain
                results.append(
                    Row(
                        f"lookup: 1 key of {keys:,}, Redis, get_row() -> dict",
                        redis_ours,
                        redis_plain,
                        p99_target=0.002,
                    )
                )
                rws.close()
            finally:
                stale = list(client.scan_iter(match=f"{prefix}*", count=10_000))
                for start in range(0, len(stale), 10_000):
                    client.unlink(*stale[start : start + 10_000])
                client.close()
    return results
