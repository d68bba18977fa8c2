"""DuckDB connections that see only the data we hand them."""

from __future__ import annotations

import duckdb


def sandboxed_connection() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection that never installs or loads extensions.

    It works in UTC, so date arithmetic on (UTC) Delta timestamps gives the same answer on
    every machine whatever its local time zone.
    """
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")
    return con


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """From here on the connection can read no file, attach nothing, and cannot undo this."""
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
