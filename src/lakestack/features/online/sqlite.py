"""The embedded online store: one SQLite file (`online.db` in the workspace folder), in WAL mode.

Each generation of an online table is a `WITHOUT ROWID` table whose primary key is the lookup
key, so a lookup is one B-tree search through a statement sqlite3 keeps prepared. Columns are
positional (k0.., ts, f0..): user names never reach SQL. Writes run in one `BEGIN IMMEDIATE`
transaction, so readers (who never block in WAL mode) see a publish whole or not at all.
Every thread gets its own connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lakestack.features.online.base import Key, OnlineStore, OnlineTableState, Row, raced
from lakestack.features.online.codec import SQLITE_TYPES

META = "lakestack_online_tables"
BATCH = 400  # keys per IN (...) query: far below SQLite's 32766 parameter limit


def _rows_table(table: str, generation: int) -> str:
    # Table names are validated three-level names ([a-z0-9_.]); quoting makes '.' legal.
    return f'"rows:{table}:{generation}"'


class SqliteOnlineStore(OnlineStore):
    """Feature rows in a local SQLite file; readers in any thread, one writer at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.display_url = f"sqlite:///{path}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._sql: dict[tuple[str, int, tuple[str, ...], int], str] = {}

    # --- connections ---------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, fast commits
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {META} "
                "(name TEXT PRIMARY KEY, revision INTEGER NOT NULL, state TEXT NOT NULL) WITHOUT ROWID"
            )
            self._local.conn = conn
            self._local.states = {}
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # --- state ---------------------------------------------------------------------------

    def _state_row(self, conn: sqlite3.Connection, table: str) -> tuple[int, str] | None:
        row = conn.execute(f"SELECT revision, state FROM {META} WHERE name = ?", (table,)).fetchone()  # noqa: S608
        return None if row is None else (int(row[0]), str(row[1]))

    def state(self, table: str) -> OnlineTableState | None:
        row = self._state_row(self._conn(), table)
        return None if row is None else OnlineTableState.from_json(row[1])

    def tables(self) -> list[str]:
        return [r[0] for r in self._conn().execute(f"SELECT name FROM {META} ORDER BY name")]  # noqa: S608

    # --- reading -------------------------------------------------------------------------

    def _select(self, state: OnlineTableState, features: Sequence[str], batch: int) -> str:
        """The SELECT for `features` of `state`'s rows by 1 key, or by `batch` keys (key first)."""
        cache_key = (state.table, state.generation, tuple(features), batch)
        sql = self._sql.get(cache_key)
        if sql is None:
            names = state.features
            wanted = ", ".join(["ts", *(f"f{names.index(f)}" for f in features)])
            keys = [f"k{i}" for i in range(len(state.keys))]
            source = _rows_table(state.table, state.generation)
            if batch == 1:
                where = " AND ".join(f"{k} = ?" for k in keys)
                sql = f"SELECT {wanted} FROM {source} WHERE {where}"  # noqa: S608 - positional names only
            else:
                tuple_ = "(" + ", ".join("?" * len(keys)) + ")"
                lhs = keys[0] if len(keys) == 1 else "(" + ", ".join(keys) + ")"
                values = ", ".join([tuple_ if len(keys) > 1 else "?"] * batch)
                rhs = f"(VALUES {values})" if len(keys) > 1 else f"({values})"
                sql = f"SELECT {', '.join(keys)}, {wanted} FROM {source} WHERE {lhs} IN {rhs}"  # noqa: S608
            self._sql[cache_key] = sql
        return sql

    def _current(
        self, conn: sqlite3.Connection, table: str, known: OnlineTableState | None
    ) -> OnlineTableState | None:
        revision = conn.execute(f"SELECT revision FROM {META} WHERE name = ?", (table,)).fetchone()  # noqa: S608
        if revision is None:
            return None
        if known is not None and known.revision == revision[0]:
            return known
        cached: OnlineTableState | None = self._local.states.get(table)
        if cached is not None and cached.revision == revision[0]:
            return cached
        fresh = self.state(table)
        self._local.states[table] = fresh
        return fresh

    def read(
        self,
        table: str,
        keys: Sequence[Key],
        features: Sequence[str],
        known: OnlineTableState | None = None,
    ) -> tuple[OnlineTableState | None, list[Row | None]]:
        conn = self._conn()
        for attempt in range(3):
            state = self._current(conn, table, known)
            if state is None:
                return None, []
            try:
                return state, self._rows(conn, state, keys, features)
            except sqlite3.OperationalError as exc:
                # A snapshot publish dropped the generation between our two statements: re-read.
                if "no such table" not in str(exc) or attempt == 2:
                    raise
                known = None
        raise AssertionError("unreachable")

    def _rows(
        self, conn: sqlite3.Connection, state: OnlineTableState, keys: Sequence[Key], features: Sequence[str]
    ) -> list[Row | None]:
        if len(keys) < 32:
            sql = self._select(state, features, 1)
            return [conn.execute(sql, key).fetchone() for key in keys]
        width = len(state.keys)
        found: dict[Key, Row] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH):
            chunk = unique[start : start + BATCH]
            sql = self._select(state, features, len(chunk))
            params = [v for key in chunk for v in key]
            for row in conn.execute(sql, params):
                found[tuple(row[:width])] = tuple(row[width:])
        return [found.get(tuple(key)) for key in keys]

    # --- writing -------------------------------------------------------------------------

    def write(
        self,
        state: OnlineTableState,
        rows: Sequence[Row],
        deletes: Sequence[Key],
        expected: OnlineTableState | None,
    ) -> None:
        target = _rows_table(state.table, state.generation)
        width = len(state.keys)
        with self._write() as conn:
            stored = self._state_row(conn, state.table)
            if (stored[0] if stored else None) != (expected.revision if expected else None):
                raise raced(state.table)
            fresh = expected is None or expected.generation != state.generation
            if fresh:
                columns = [f"k{i} {SQLITE_TYPES[c.kind]} NOT NULL" for i, c in enumerate(state.key_columns)]
                columns.append("ts INTEGER NOT NULL")
                columns += [
                    f"f{i} {SQLITE_TYPES[c.kind]}" for i, c in enumerate(state.feature_columns.values())
                ]
                keys = ", ".join(f"k{i}" for i in range(width))
                conn.execute(f"DROP TABLE IF EXISTS {target}")  # left by a crashed publish
                conn.execute(
                    f"CREATE TABLE {target} ({', '.join(columns)}, PRIMARY KEY ({keys})) WITHOUT ROWID"
                )
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                conn.executemany(f"INSERT OR REPLACE INTO {target} VALUES ({marks})", rows)  # noqa: S608
            if deletes and not fresh:
                where = " AND ".join(f"k{i} = ?" for i in range(width))
                conn.executemany(f"DELETE FROM {target} WHERE {where}", deletes)  # noqa: S608
            conn.execute(
                f"INSERT OR REPLACE INTO {META} (name, revision, state) VALUES (?, ?, ?)",  # noqa: S608
                (state.table, state.revision, state.to_json()),
            )
            if fresh and expected is not None:
                conn.execute(f"DROP TABLE IF EXISTS {_rows_table(expected.table, expected.generation)}")

    def drop(self, table: str) -> bool:
        if not self.path.exists():
            return False
        with self._write() as conn:
            stored = self._state_row(conn, table)
            if stored is None:
                return False
            generation = OnlineTableState.from_json(stored[1]).generation
            conn.execute(f"DROP TABLE IF EXISTS {_rows_table(table, generation)}")
            conn.execute(f"DELETE FROM {META} WHERE name = ?", (table,))  # noqa: S608
        return True
