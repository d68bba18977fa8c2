"""Data-quality expectations: warn keeps, drop filters, fail rejects; counts land in history."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from lakestack import Expectation, Workspace
from lakestack.errors import ExpectationFailed, InvalidParameter, PrivilegeMissing

FARES = "dev.raw.fares"
SCHEMA = pa.schema([("id", pa.int64()), ("fare", pa.float64()), ("city", pa.string())])
NONNEG = Expectation("fare_not_negative", "fare >= 0", "warn")


@pytest.fixture
def ws(sqlite_workspace: Workspace) -> Workspace:
    sqlite_workspace.schemas.create("dev.raw")
    sqlite_workspace.tables.create(FARES, data=pa.table({"id": [1], "fare": [1.0], "city": ["ams"]}))
    return sqlite_workspace


def batch(*rows: tuple[int, float | None, str | None]) -> pa.Table:
    return pa.Table.from_pylist([{"id": i, "fare": f, "city": c} for i, f, c in rows], schema=SCHEMA)


MIXED = batch((2, 5.0, "ams"), (3, -1.0, "ber"), (4, None, "cph"), (5, 0.0, None))


def ids(ws: Workspace, **read: Any) -> list[int]:
    return sorted(ws.tables.read(FARES, **read).column("id").to_pylist())


def snapshot(ws: Workspace) -> tuple[int, list[dict[str, Any]]]:
    return ws.tables.get(FARES).version, sorted(ws.tables.read(FARES).to_pylist(), key=lambda r: r["id"])


def counts(results: list[Any]) -> dict[str, tuple[str, int, int]]:
    """name -> (action, passed, failed), from ExpectationResults or history dicts."""
    as_dicts = [r if isinstance(r, dict) else r.to_dict() for r in results]
    return {r["name"]: (r["action"], r["passed"], r["failed"]) for r in as_dicts}


def test_warn_keeps_every_row_and_counts_failures(ws: Workspace) -> None:
    result = ws.tables.write(FARES, MIXED, expectations=[NONNEG])

    assert ids(ws) == [1, 2, 3, 4, 5]
    assert result.rows_written == 4
    # -1.0 fails and NULL counts as failing: "not known to be valid" is not valid.
    assert counts(result.expectations) == {"fare_not_negative": ("warn", 2, 2)}


def test_drop_keeps_only_passing_rows_and_treats_null_as_failing(ws: Workspace) -> None:
    result = ws.tables.write(
        FARES, MIXED, expectations=[Expectation("fare_not_negative", "fare >= 0", "drop")]
    )

    assert ids(ws) == [1, 2, 5]
    assert result.rows_written == 2
    assert counts(result.expectations) == {"fare_not_negative": ("drop", 2, 2)}


def test_several_drop_expectations_all_have_to_pass(ws: Workspace) -> None:
    result = ws.tables.write(
        FARES,
        MIXED,
        expectations=[
            Expectation("fare_not_negative", "fare >= 0", "drop"),
            Expectation("has_city", "city IS NOT NULL", "drop"),
            Expectation("small_id", "id < 5", "warn"),
        ],
    )

    assert ids(ws) == [1, 2]
    assert counts(result.expectations) == {
        "fare_not_negative": ("drop", 2, 2),
        "has_city": ("drop", 3, 1),
        "small_id": ("warn", 3, 1),
    }


def test_fail_rejects_the_whole_write_and_leaves_the_table(ws: Workspace) -> None:
    before = snapshot(ws)
    with pytest.raises(ExpectationFailed) as caught:
        ws.tables.write(FARES, MIXED, expectations=[Expectation("fare_not_negative", "fare >= 0", "fail")])

    assert "fare_not_negative" in caught.value.message
    assert "2 of 4" in caught.value.message
    assert snapshot(ws) == before
    assert len(ws.tables.history(FARES)) == 1


def test_fail_on_null_alone_rejects_the_write(ws: Workspace) -> None:
    before = snapshot(ws)
    with pytest.raises(ExpectationFailed, match="1 of 1"):
        ws.tables.write(
            FARES, batch((9, None, "ams")), expectations=[Expectation("known_fare", "fare > 0", "fail")]
        )
    assert snapshot(ws) == before


def test_fail_passes_when_every_row_passes(ws: Workspace) -> None:
    result = ws.tables.write(
        FARES, batch((9, 9.0, "ams")), expectations=[Expectation("known_fare", "fare > 0", "fail")]
    )
    assert counts(result.expectations) == {"known_fare": ("fail", 1, 0)}
    assert ids(ws) == [1, 9]


def test_counts_are_recorded_in_history_per_version(ws: Workspace) -> None:
    ws.tables.write(FARES, MIXED, expectations=[NONNEG])
    ws.tables.write(FARES, batch((6, 6.0, "osl")))
    ws.tables.write(
        FARES, batch((7, -7.0, "osl"), (8, 8.0, "osl")), expectations=[Expectation("pos", "fare > 0", "drop")]
    )

    history = {h.version: h for h in ws.tables.history(FARES)}
    assert counts(history[1].expectations) == {"fare_not_negative": ("warn", 2, 2)}
    assert history[2].expectations == []
    assert counts(history[3].expectations) == {"pos": ("drop", 1, 1)}
    assert history[0].expectations == []
    assert ids(ws) == [1, 2, 3, 4, 5, 6, 8]


def test_expectations_apply_to_data_given_at_create(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.schemas.create("dev.raw")
    ws.tables.create(FARES, data=MIXED, expectations=[Expectation("fare_not_negative", "fare >= 0", "drop")])

    assert ids(ws) == [2, 5]
    assert counts(ws.tables.history(FARES)[0].expectations) == {"fare_not_negative": ("drop", 2, 2)}


def test_failing_create_creates_no_table(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.schemas.create("dev.raw")
    with pytest.raises(ExpectationFailed):
        ws.tables.create(
            FARES, data=MIXED, expectations=[Expectation("fare_not_negative", "fare >= 0", "fail")]
        )
    assert not ws.tables.exists(FARES)
    assert not (ws.folder / "tables" / "dev" / "raw" / "fares").exists()


def test_stored_expectations_apply_to_later_writes_and_merges(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ws.schemas.create("dev.raw")
    stored = [
        Expectation("fare_not_negative", "fare >= 0", "drop"),
        Expectation("has_city", "city IS NOT NULL", "fail"),
    ]
    info = ws.tables.create(FARES, schema=SCHEMA, expectations=stored)
    assert info.expectations == stored
    assert "lakestack.expectations" not in info.properties

    written = ws.tables.write(FARES, batch((1, 1.0, "ams"), (2, -2.0, "ber")))
    assert counts(written.expectations) == {"fare_not_negative": ("drop", 1, 1), "has_city": ("fail", 2, 0)}
    assert ids(ws) == [1]

    merged = ws.tables.merge(FARES, batch((1, 10.0, "ams"), (3, -3.0, "cph")), keys=["id"])
    assert counts(merged.expectations) == {"fare_not_negative": ("drop", 1, 1), "has_city": ("fail", 2, 0)}
    assert ws.tables.read(FARES).to_pylist() == [{"id": 1, "fare": 10.0, "city": "ams"}]
    assert counts(ws.tables.history(FARES)[0].expectations) == counts(merged.expectations)

    version = ws.tables.get(FARES).version
    with pytest.raises(ExpectationFailed, match="has_city"):
        ws.tables.merge(FARES, batch((1, 11.0, None)), keys=["id"])
    with pytest.raises(ExpectationFailed, match="has_city"):
        ws.tables.write(FARES, batch((4, 4.0, None)))
    assert ws.tables.get(FARES).version == version
    assert ws.tables.read(FARES).to_pylist() == [{"id": 1, "fare": 10.0, "city": "ams"}]


def test_set_expectations_replaces_the_stored_ones(ws: Workspace) -> None:
    ws.tables.set_expectations(FARES, [Expectation("known_city", "city IS NOT NULL", "drop")])

    assert ws.tables.get(FARES).expectations == [Expectation("known_city", "city IS NOT NULL", "drop")]
    result = ws.tables.write(FARES, MIXED)
    assert counts(result.expectations) == {"known_city": ("drop", 3, 1)}
    assert ids(ws) == [1, 2, 3, 4]

    ws.tables.set_expectations(FARES, [])
    assert ws.tables.get(FARES).expectations == []
    assert ws.tables.write(FARES, batch((9, None, None))).expectations == []
    assert ids(ws) == [1, 2, 3, 4, 9]


def test_per_write_expectations_add_to_stored_ones_even_with_the_same_name(ws: Workspace) -> None:
    ws.tables.set_expectations(FARES, [Expectation("check", "fare >= 0", "drop")])

    result = ws.tables.write(FARES, MIXED, expectations=[Expectation("check", "id < 5", "warn")])

    assert [(r.name, r.action, r.passed, r.failed) for r in result.expectations] == [
        ("check", "drop", 2, 2),
        ("check", "warn", 3, 1),
    ]
    assert ids(ws) == [1, 2, 5]


def test_expectations_on_an_empty_write(ws: Workspace) -> None:
    result = ws.tables.write(
        FARES, SCHEMA.empty_table(), expectations=[Expectation("pos", "fare > 0", "drop")]
    )

    assert counts(result.expectations) == {"pos": ("drop", 0, 0)}
    assert ids(ws) == [1]


def test_set_expectations_needs_manage(workspace: Workspace) -> None:
    ws = workspace
    ws.schemas.create("dev.raw")
    ws.tables.create(FARES, schema=SCHEMA, expectations=[NONNEG])
    ws.principals.create("writer")
    for privilege, kind, name in [
        ("USE_CATALOG", "catalog", "dev"),
        ("USE_SCHEMA", "schema", "dev.raw"),
        ("MODIFY", "table", FARES),
        ("SELECT", "table", FARES),
    ]:
        ws.grants.grant(privilege, kind, name, "writer")
    writer = ws.as_principal("writer")

    with pytest.raises(PrivilegeMissing, match="MANAGE"):
        writer.tables.set_expectations(FARES, [])
    assert ws.tables.get(FARES).expectations == [NONNEG]
    # The stored expectation still applies to the writer's writes.
    assert counts(writer.tables.write(FARES, batch((1, -1.0, "ams"))).expectations) == {
        "fare_not_negative": ("warn", 0, 1)
    }


@pytest.mark.parametrize(
    "condition",
    ["fare >>> 0", "no_such_column > 0", "fare >= ", "id IN (SELECT 1 FROM read_csv('/etc/passwd'))"],
    ids=["operator", "unknown-column", "truncated", "reads-a-file"],
)
def test_invalid_expression_is_invalid_parameter_and_leaves_table(ws: Workspace, condition: str) -> None:
    before = snapshot(ws)
    with pytest.raises(InvalidParameter, match="not valid SQL") as caught:
        ws.tables.write(FARES, MIXED, expectations=[Expectation("bad_rule", condition, "warn")])
    assert "bad_rule" in caught.value.message
    assert "\n" not in caught.value.message
    assert snapshot(ws) == before


def test_invalid_stored_expression_blocks_merges_too(ws: Workspace) -> None:
    ws.tables.set_expectations(FARES, [Expectation("bad_rule", "fare >>> 0", "warn")])
    before = snapshot(ws)
    with pytest.raises(InvalidParameter, match="bad_rule"):
        ws.tables.merge(FARES, batch((1, 2.0, "ams")), keys=["id"])
    assert snapshot(ws) == before


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("two_statements", "fare > 0; DROP TABLE x", "warn"), "without ';'"),
        (("rule", "fare > 0", "explode"), "warn, drop or fail"),
        (("bad name!", "fare > 0", "warn"), "expectation name"),
    ],
    ids=["semicolon", "action", "name"],
)
def test_malformed_expectation_is_refused_when_built(args: tuple[str, str, str], match: str) -> None:
    with pytest.raises(InvalidParameter, match=match):
        Expectation(*args)  # type: ignore[arg-type]
