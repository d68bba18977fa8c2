"""`lakestack features publish|lookup|unpublish` as a user runs them: real subprocesses and exit codes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from tests.e2e.test_cli import EXIT, lakestack, ok

from lakestack import Workspace

SPEND = "dev.fs.spend"


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace with feature tables dev.fs.spend (customer_id + ts) and dev.fs.stock (store, sku)."""
    folder = tmp_path / "ws"
    with Workspace.init(folder) as workspace:
        workspace.schemas.create("dev.fs")
        workspace.features.create_table(
            SPEND,
            primary_keys="customer_id",
            timestamp_key="ts",
            df=pa.table(
                {
                    "customer_id": [1, 1, 2],
                    "ts": [datetime(2026, 1, 1), datetime(2026, 1, 5), datetime(2026, 1, 3)],
                    "spend": [11.0, 51.0, 32.0],
                }
            ),
        )
        workspace.features.create_table(
            "dev.fs.stock",
            primary_keys=["store", "sku"],
            df=pa.table({"store": ["a", "b"], "sku": [1, 1], "qty": [10, 30]}),
        )
    return folder


def fails(ws: Path, code: str, needle: str, *args: str) -> None:
    result = lakestack(*args, ws=ws)
    assert result.returncode == EXIT[code], (result.returncode, result.stderr)
    assert needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_publish_then_lookup(ws: Path) -> None:
    fails(
        ws,
        "not_found",
        "is not published to the online store",
        "features",
        "lookup",
        SPEND,
        "-k",
        "customer_id=1",
    )

    first = json.loads(ok("features", "publish", SPEND, "--ttl", "3650d", "--json", ws=ws))
    assert first["mode"] == "snapshot" and first["rows_written"] == 2 and first["to_version"] == 0
    assert first["fallback_reason"] == "the table was not published yet"
    again = ok("features", "publish", SPEND, ws=ws)
    assert "up to date" in again

    rows = json.loads(
        ok(
            "features",
            "lookup",
            SPEND,
            "--key",
            "customer_id=2",
            "--key",
            "customer_id=1",
            "-k",
            "customer_id=9",
            "--json",
            ws=ws,
        )
    )
    assert rows == [
        {"customer_id": 2, "spend": 32.0},
        {"customer_id": 1, "spend": 51.0},
        {"customer_id": 9, "spend": None},
    ]
    shown = ok("features", "lookup", SPEND, "--key", "customer_id=1", ws=ws)
    assert "51.0" in shown and "1 row(s)" in shown

    snapshot = ok("features", "publish", "dev.fs.stock", "--mode", "snapshot", ws=ws)
    assert "Published dev.fs.stock (snapshot, version 0)" in snapshot and "2 row(s) written" in snapshot
    stock = json.loads(
        ok(
            "features",
            "lookup",
            "dev.fs.stock",
            "-k",
            "store=b",
            "-k",
            "sku=1",
            "--feature",
            "qty",
            "--json",
            ws=ws,
        )
    )
    assert stock == [{"store": "b", "sku": 1, "qty": 30}]

    assert "Removed dev.fs.stock" in ok("features", "unpublish", "dev.fs.stock", ws=ws)
    fails(
        ws,
        "not_found",
        "lakestack features publish dev.fs.stock",
        "features",
        "lookup",
        "dev.fs.stock",
        "-k",
        "store=b",
        "-k",
        "sku=1",
    )


def test_bad_input_is_one_line_and_exit_code_2(ws: Path) -> None:
    fails(ws, "invalid", "not a duration", "features", "publish", SPEND, "--ttl", "soon")
    fails(ws, "invalid", "use incremental or snapshot", "features", "publish", SPEND, "--mode", "full")
    fails(ws, "not_found", "Did you mean 'dev.fs.spend'?", "features", "publish", "dev.fs.spnd")
    ok("features", "publish", SPEND, ws=ws)
    fails(ws, "invalid", "use COLUMN=VALUE", "features", "lookup", SPEND, "--key", "42")
    fails(
        ws, "invalid", "Key column 'customer_id' is int64", "features", "lookup", SPEND, "-k", "customer_id=x"
    )
    fails(
        ws,
        "invalid",
        "same number of --key values",
        "features",
        "lookup",
        "dev.fs.stock",
        "-k",
        "store=a",
        "-k",
        "store=b",
        "-k",
        "sku=1",
    )
