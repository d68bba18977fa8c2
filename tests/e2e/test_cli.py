"""The CLI as a new user meets it: real subprocesses, real exit codes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXIT = {"ok": 0, "invalid": 2, "not_found": 3, "denied": 4, "exists": 5, "quality": 6}


def lakestack(*args: str, ws: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "lakestack.cli.main", "-w", str(ws), *args]
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("LAKESTACK_TOKEN", None) if env is None or "LAKESTACK_TOKEN" not in env else None
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=120)


def ok(*args: str, ws: Path, env: dict[str, str] | None = None) -> str:
    result = lakestack(*args, ws=ws, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def trips_csv(tmp_path: Path) -> Path:
    path = tmp_path / "trips.csv"
    path.write_text(
        "trip_id,pickup_ts,fare,city\n"
        "1,2026-01-01T08:00:00,12.5,nyc\n"
        "2,2026-01-01T09:15:00,7.25,sf\n"
        "3,2026-01-02T17:40:00,30.0,nyc\n"
    )
    return path


def test_acceptance_sequence(tmp_path: Path, trips_csv: Path) -> None:
    ws = tmp_path / "ws"
    assert "ready" in ok("workspace", "init", ws=ws)
    ok("tables", "import", "dev.raw.trips", str(trips_csv), ws=ws)
    assert json.loads(ok("sql", "SELECT count(*) AS n FROM dev.raw.trips", "--json", ws=ws)) == [{"n": 3}]

    more = tmp_path / "more.csv"
    more.write_text("trip_id,pickup_ts,fare,city\n4,2026-01-03T10:00:00,9.5,sf\n")
    ok("tables", "import", "dev.raw.trips", str(more), ws=ws)
    history = json.loads(ok("tables", "history", "dev.raw.trips", "--json", ws=ws))
    assert [h["version"] for h in history] == [1, 0]
    assert history[0]["principal"] == "admin" and history[0]["operation"] == "WRITE"

    head = ok("tables", "head", "dev.raw.trips", "--version", "0", ws=ws)
    assert "3 row(s)" in head and "12.5" in head and "9.5" not in head
    rows = json.loads(ok("tables", "head", "dev.raw.trips", "--json", ws=ws))
    assert sorted(r["trip_id"] for r in rows) == [1, 2, 3, 4]

    init_again = json.loads(ok("workspace", "init", "--json", ws=ws))
    assert init_again["catalogs"] == ["dev", "prod", "staging", "test"]


def test_one_line_errors_with_meaningful_exit_codes(tmp_path: Path, trips_csv: Path) -> None:
    ws = tmp_path / "ws"
    ok("workspace", "init", ws=ws)
    ok("tables", "import", "dev.raw.trips", str(trips_csv), ws=ws)

    def fails(code: str, needle: str, *args: str) -> None:
        result = lakestack(*args, ws=ws)
        assert result.returncode == EXIT[code], (result.returncode, result.stderr)
        assert needle in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr

    fails("invalid", "three-level name", "sql", "SELECT * FROM trips")
    fails("invalid", "Invalid table name", "tables", "head", "dev.raw.../etc/passwd")
    fails("not_found", "Did you mean 'dev.raw.trips'?", "tables", "head", "dev.raw.trip")
    bad = tmp_path / "bad.csv"
    bad.write_text("trip_id,fare\n1,2,3\n")
    fails("invalid", "Cannot read", "tables", "import", "dev.raw.trips", str(bad))
    other = tmp_path / "other.csv"
    other.write_text("trip_id,tip\n9,1.5\n")
    fails("invalid", "--evolve-schema", "tables", "import", "dev.raw.trips", str(other))
    fails("exists", "already exists", "schemas", "create", "dev.raw")
    fails("not_found", "workspace init", "-w", str(tmp_path / "nowhere"), "tables", "ls", "dev.raw")

    # Nothing above changed the table.
    assert [h["version"] for h in json.loads(ok("tables", "history", "dev.raw.trips", "--json", ws=ws))] == [
        0
    ]
    # --debug shows the traceback a developer wants.
    debug = lakestack("--debug", "tables", "head", "dev.raw.trip", ws=ws)
    assert debug.returncode == EXIT["not_found"] and "Traceback" in debug.stderr


def test_permission_denied_alike_through_token_cli_and_sql(tmp_path: Path, trips_csv: Path) -> None:
    ws = tmp_path / "ws"
    ok("workspace", "init", ws=ws)
    ok("tables", "import", "dev.raw.trips", str(trips_csv), ws=ws)
    ok("principals", "create", "carol", ws=ws)
    token = json.loads(
        ok("tokens", "create", "--principal", "carol", "--comment", "laptop", "--json", ws=ws)
    )["token"]
    as_carol = {"LAKESTACK_TOKEN": token}

    for args in (["sql", "SELECT * FROM dev.raw.trips"], ["tables", "head", "dev.raw.trips"]):
        result = lakestack(*args, ws=ws, env=as_carol)
        assert result.returncode == EXIT["denied"]
        assert "lacks USE_CATALOG on catalog 'dev'" in result.stderr

    ok("grants", "grant", "USE_CATALOG", "catalog", "dev", "carol", ws=ws)
    ok("grants", "grant", "use_schema", "schema", "dev.raw", "carol", ws=ws)
    result = lakestack("sql", "SELECT * FROM dev.raw.trips", ws=ws, env=as_carol)
    assert result.returncode == EXIT["denied"] and "lacks SELECT on table 'dev.raw.trips'" in result.stderr
    ok("grants", "grant", "SELECT", "table", "dev.raw.trips", "carol", ws=ws)
    assert json.loads(
        ok("sql", "SELECT count(*) AS n FROM dev.raw.trips", "--json", ws=ws, env=as_carol)
    ) == [{"n": 3}]

    grants = json.loads(ok("grants", "show", "table", "dev.raw.trips", "--json", ws=ws))
    assert {(g["principal"], g["privilege"]) for g in grants} >= {
        ("carol", "SELECT"),
        ("carol", "USE_CATALOG"),
    }
    denied = json.loads(ok("audit", "ls", "--principal", "carol", "--denied", "--json", ws=ws))
    assert len(denied) == 3 and all(not e["allowed"] for e in denied)

    token_id = json.loads(ok("tokens", "ls", "--json", ws=ws))[0]["id"]
    ok("tokens", "revoke", token_id, ws=ws)
    result = lakestack("sql", "SELECT 1 AS one FROM dev.raw.trips", ws=ws, env=as_carol)
    assert result.returncode == EXIT["denied"] and "revoked" in result.stderr and token not in result.stderr


def test_query_output_formats(tmp_path: Path, trips_csv: Path) -> None:
    ws = tmp_path / "ws"
    ok("workspace", "init", ws=ws)
    ok("tables", "import", "dev.raw.trips", str(trips_csv), ws=ws)
    query = "SELECT city, sum(fare) AS revenue FROM dev.raw.trips GROUP BY city ORDER BY city"
    assert ok("sql", query, "--format", "csv", ws=ws).splitlines() == [
        '"city","revenue"',
        '"nyc",42.5',
        '"sf",7.25',
    ]
    out = tmp_path / "result.parquet"
    ok("sql", query, "--format", "parquet", "--output", str(out), ws=ws)
    import pyarrow.parquet as pq

    assert pq.read_table(out).to_pylist() == [
        {"city": "nyc", "revenue": 42.5},
        {"city": "sf", "revenue": 7.25},
    ]


def test_maintenance_commands(tmp_path: Path, trips_csv: Path) -> None:
    ws = tmp_path / "ws"
    ok("workspace", "init", ws=ws)
    for _ in range(3):
        ok("tables", "import", "dev.raw.trips", str(trips_csv), ws=ws)
    optimized = json.loads(ok("tables", "optimize", "dev.raw.trips", "--zorder-by", "city", "--json", ws=ws))
    assert optimized["numFilesRemoved"] == 3
    assert (
        json.loads(ok("tables", "restore", "dev.raw.trips", "--version", "0", "--json", ws=ws))["version"]
        == 4
    )
    assert json.loads(ok("sql", "SELECT count(*) AS n FROM dev.raw.trips", "--json", ws=ws)) == [{"n": 3}]
    refused = lakestack("tables", "vacuum", "dev.raw.trips", "--retention-hours", "0", ws=ws)
    assert refused.returncode == EXIT["invalid"] and "retention" in refused.stderr
    dry = json.loads(
        ok(
            "tables",
            "vacuum",
            "dev.raw.trips",
            "--retention-hours",
            "0",
            "--no-enforce-retention",
            "--dry-run",
            "--json",
            ws=ws,
        )
    )
    assert dry["dry_run"] and dry["files"]
    ok("tables", "drop", "dev.raw.trips", ws=ws)
    assert "No tables" in ok("tables", "ls", "dev.raw", ws=ws)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["workspace"],
        ["catalogs"],
        ["schemas"],
        ["tables"],
        ["sql"],
        ["grants"],
        ["principals"],
        ["tokens"],
        ["audit"],
        ["models"],
        ["models", "alias"],
        ["experiments"],
        ["runs"],
    ],
)
def test_every_command_teaches_itself(tmp_path: Path, command: list[str]) -> None:
    result = lakestack(*command, "--help", ws=tmp_path)
    assert result.returncode == 0
    assert "Usage" in result.stdout and len(result.stdout) > 200
