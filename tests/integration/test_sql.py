"""`ws.sql`: one read-only SELECT over granted workspace tables, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from lakestack import Workspace
from lakestack.errors import InvalidQuery, PrivilegeMissing, SecurableNotFound


def _populate(ws: Workspace) -> Workspace:
    ws.schemas.create("dev.shop")
    ws.tables.create(
        "dev.shop.customers",
        data=pa.table({"id": [1, 2, 3], "name": ["ann", "bob", "cy"], "city": ["ams", "ber", "ams"]}),
    )
    ws.tables.create(
        "dev.shop.orders",
        data=pa.table(
            {"order_id": [10, 11, 12, 13], "customer_id": [1, 1, 2, 9], "amount": [5.0, 7.0, 11.0, 1.0]}
        ),
    )
    ws.schemas.create("dev.ref")
    ws.tables.create("dev.ref.cities", data=pa.table({"city": ["ams", "ber"], "country": ["nl", "de"]}))
    return ws


@pytest.fixture
def ws(sqlite_workspace: Workspace) -> Workspace:
    return _populate(sqlite_workspace)


def test_join_across_schemas_and_a_cte(ws: Workspace) -> None:
    result = ws.sql(
        """
        WITH spend AS (
            SELECT customer_id, sum(amount) AS total, count(*) AS n FROM dev.shop.orders GROUP BY customer_id
        )
        SELECT c.name, ci.country, s.total, s.n
        FROM dev.shop.customers AS c
        JOIN spend AS s ON s.customer_id = c.id
        JOIN dev.ref.cities ci ON ci.city = c.city
        ORDER BY c.name
        """
    )

    assert isinstance(result, pa.Table)
    assert result.to_pylist() == [
        {"name": "ann", "country": "nl", "total": 12.0, "n": 2},
        {"name": "bob", "country": "de", "total": 11.0, "n": 1},
    ]


def test_subqueries_using_joins_and_self_joins(ws: Workspace) -> None:
    in_subquery = ws.sql(
        "SELECT name FROM dev.shop.customers WHERE id IN (SELECT customer_id FROM dev.shop.orders) "
        "ORDER BY name"
    )
    assert in_subquery.column("name").to_pylist() == ["ann", "bob"]

    using = ws.sql(
        "SELECT city, country, count(*) AS n FROM dev.shop.customers JOIN dev.ref.cities USING (city) "
        "GROUP BY ALL ORDER BY city"
    )
    assert using.to_pylist() == [
        {"city": "ams", "country": "nl", "n": 2},
        {"city": "ber", "country": "de", "n": 1},
    ]

    pairs = ws.sql(
        "SELECT a.name AS a, b.name AS b FROM dev.shop.customers a JOIN dev.shop.customers b "
        "ON a.city = b.city AND a.id < b.id"
    )
    assert pairs.to_pylist() == [{"a": "ann", "b": "cy"}]


def test_names_are_case_insensitive_and_may_be_quoted(ws: Workspace) -> None:
    assert ws.sql('SELECT count(*) AS n FROM "dev"."shop"."customers"').to_pylist() == [{"n": 3}]
    assert ws.sql("SELECT count(*) AS n FROM DEV.Shop.CUSTOMERS").to_pylist() == [{"n": 3}]


def test_positional_and_named_parameters(ws: Workspace) -> None:
    positional = ws.sql(
        "SELECT order_id FROM dev.shop.orders WHERE customer_id = ? AND amount > ? ORDER BY 1", [1, 6.0]
    )
    assert positional.column("order_id").to_pylist() == [11]

    named = ws.sql(
        "WITH big AS (SELECT * FROM dev.shop.orders WHERE amount >= $min) SELECT count(*) AS n FROM big",
        {"min": 7.0},
    )
    assert named.to_pylist() == [{"n": 2}]


def test_parameters_are_values_not_sql(ws: Workspace) -> None:
    result = ws.sql("SELECT count(*) AS n FROM dev.shop.customers WHERE name = ?", ["ann' OR '1'='1"])
    assert result.to_pylist() == [{"n": 0}]


def test_filters_push_down_into_partitioned_multi_file_tables(ws: Workspace) -> None:
    n = 20_000
    ws.tables.create(
        "dev.shop.events",
        data=pa.table(
            {
                "id": list(range(n)),
                "day": [f"2024-01-{1 + i % 5:02d}" for i in range(n)],
                "v": [i % 7 for i in range(n)],
            }
        ),
        partition_by=["day"],
    )
    ws.tables.write("dev.shop.events", pa.table({"id": [n], "day": ["2024-01-03"], "v": [100]}))

    result = ws.sql(
        "SELECT count(*) AS n, sum(v) AS s, max(id) AS top FROM dev.shop.events "
        "WHERE day = '2024-01-03' AND v >= 5"
    )

    expected = [i for i in range(n) if i % 5 == 2 and i % 7 >= 5] + [n]
    values = [i % 7 for i in range(n) if i % 5 == 2 and i % 7 >= 5] + [100]
    assert result.to_pylist() == [{"n": len(expected), "s": sum(values), "top": n}]
    projected = ws.sql("SELECT id FROM dev.shop.events WHERE id BETWEEN 10 AND 12 ORDER BY id")
    assert projected.schema.names == ["id"]
    assert projected.column("id").to_pylist() == [10, 11, 12]


def test_string_filters_work_on_tables_rewritten_by_merges(ws: Workspace) -> None:
    """Merged files hold string_view columns that pyarrow cannot compare; results must not care."""
    ws.tables.merge("dev.shop.customers", pa.table({"id": [2, 4], "name": ["bo", "dee"]}), keys=["id"])

    assert ws.sql("SELECT id FROM dev.shop.customers WHERE name = 'dee'").to_pylist() == [{"id": 4}]
    assert ws.tables.read(
        "dev.shop.customers", columns=["id"], filters=[("name", "=", "bo")]
    ).to_pylist() == [{"id": 2}]
    assert ws.tables.changes("dev.shop.customers", 1).schema.field("name").type == pa.string()


def test_time_arithmetic_is_in_utc_whatever_the_machine_zone(ws: Workspace) -> None:
    late = pa.array([1_767_225_599_000_000], pa.timestamp("us", tz="UTC"))  # 2025-12-31 23:59:59 UTC
    ws.tables.create("dev.shop.events", data=pa.table({"ts": late}))
    day = ws.sql("SELECT strftime(date_trunc('day', ts), '%Y-%m-%d') AS d FROM dev.shop.events")
    assert day.to_pylist() == [{"d": "2025-12-31"}]


def test_query_sees_the_current_version(ws: Workspace) -> None:
    ws.tables.write("dev.shop.orders", pa.table({"order_id": [14], "customer_id": [3], "amount": [2.0]}))
    assert ws.sql("SELECT count(*) AS n FROM dev.shop.orders").to_pylist() == [{"n": 5}]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM dev.shop.orders",
        "UPDATE dev.shop.orders SET amount = 0",
        "INSERT INTO dev.shop.orders VALUES (1, 1, 1.0)",
        "CREATE TABLE dev.shop.copy AS SELECT * FROM dev.shop.orders",
        "DROP TABLE dev.shop.orders",
        "SET enable_external_access = true",
        "PRAGMA database_list",
        "EXPLAIN SELECT * FROM dev.shop.orders",
    ],
)
def test_non_select_statements_are_rejected(ws: Workspace, statement: str) -> None:
    with pytest.raises(InvalidQuery, match="Only queries"):
        ws.sql(statement)
    assert ws.tables.get("dev.shop.orders").version == 0
    assert ws.tables.read("dev.shop.orders").num_rows == 4


@pytest.mark.parametrize(
    "query", ["SELECT 1; SELECT 2", "SELECT * FROM dev.shop.orders; DELETE FROM dev.shop.orders"]
)
def test_multiple_statements_are_rejected(ws: Workspace, query: str) -> None:
    with pytest.raises(InvalidQuery, match="one statement"):
        ws.sql(query)
    assert ws.tables.read("dev.shop.orders").num_rows == 4


def test_syntax_and_binding_errors_are_invalid_query(ws: Workspace) -> None:
    with pytest.raises(InvalidQuery, match="syntax"):
        ws.sql("SELEC * FROM dev.shop.orders")
    with pytest.raises(InvalidQuery, match="no_such_column"):
        ws.sql("SELECT no_such_column FROM dev.shop.orders")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM orders",
        "SELECT * FROM shop.orders",
        "SELECT * FROM dev.shop.orders o JOIN customers c ON c.id = o.customer_id",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM __lakestack_0",
    ],
)
def test_one_and_two_part_names_are_rejected_naming_the_form(ws: Workspace, query: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        ws.sql(query)
    assert "catalog.schema.table" in caught.value.message


def test_unknown_table_is_securable_not_found(ws: Workspace) -> None:
    with pytest.raises(SecurableNotFound, match=r"dev\.shop\.order\b") as caught:
        ws.sql("SELECT * FROM dev.shop.order")
    assert "dev.shop.orders" in caught.value.message  # suggests the near name
    with pytest.raises(SecurableNotFound):
        ws.sql("SELECT * FROM dev.nowhere.orders")
    with pytest.raises(SecurableNotFound):
        ws.sql("SELECT * FROM system.main.duckdb_settings")


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM dev.shop.orders WHERE customer_id IN (SELECT 1 FROM read_csv('/etc/passwd'))",
        "SELECT * FROM dev.shop.orders UNION ALL SELECT * FROM read_json('/etc/passwd')",
    ],
)
def test_reading_files_is_impossible(ws: Workspace, query: str) -> None:
    with pytest.raises(InvalidQuery):
        ws.sql(query)


def test_reading_a_tables_own_parquet_files_is_impossible(ws: Workspace) -> None:
    location = Path(ws.tables.get("dev.shop.orders").location)
    [data_file] = [p for p in location.glob("*.parquet")]
    for query in (f"SELECT * FROM read_parquet('{data_file}')", f"SELECT * FROM '{data_file}'"):  # noqa: S608
        with pytest.raises(InvalidQuery):
            ws.sql(query)


def test_copy_attach_install_and_load_are_impossible(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "stolen.csv"
    for statement in (
        f"COPY (SELECT * FROM dev.shop.customers) TO '{target}'",  # noqa: S608
        f"COPY dev.shop.customers FROM '{out / 'in.csv'}'",
        f"ATTACH '{out / 'other.duckdb'}' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
    ):
        with pytest.raises(InvalidQuery):
            ws.sql(statement)
    assert list(out.iterdir()) == []


def test_describe_and_summarize_are_read_only_queries(ws: Workspace) -> None:
    described = ws.sql("DESCRIBE dev.shop.orders")
    assert described.column("column_name").to_pylist() == ["order_id", "customer_id", "amount"]
    summary = ws.sql("SUMMARIZE dev.shop.orders")
    assert summary.num_rows == 3


# --- grants ------------------------------------------------------------------------------


def _analyst(ws: Workspace) -> Workspace:
    """`analyst` may use dev.shop and SELECT dev.shop.customers, but not dev.shop.orders."""
    ws.principals.create("analyst")
    ws.grants.grant("USE_CATALOG", "catalog", "dev", "analyst")
    ws.grants.grant("USE_SCHEMA", "schema", "dev.shop", "analyst")
    ws.grants.grant("SELECT", "table", "dev.shop.customers", "analyst")
    return ws.as_principal("analyst")


def test_select_needs_the_privilege_on_every_table_of_a_join(workspace: Workspace) -> None:
    ws = _populate(workspace)
    analyst = _analyst(ws)

    assert analyst.sql("SELECT count(*) AS n FROM dev.shop.customers").to_pylist() == [{"n": 3}]
    with pytest.raises(PrivilegeMissing) as caught:
        analyst.sql(
            "SELECT c.name, o.amount FROM dev.shop.customers c JOIN dev.shop.orders o ON o.customer_id = c.id"
        )

    assert caught.value.privilege == "SELECT"
    assert "SELECT" in caught.value.message
    assert "dev.shop.orders" in caught.value.message
    assert caught.value.principal == "analyst"

    denied = ws.audit.list(denied_only=True, principal="analyst")
    assert [(d.securable_name, d.privilege, d.allowed) for d in denied] == [
        ("dev.shop.orders", "SELECT", False)
    ]
    assert denied[0].action == "tables.scan"


def test_table_hidden_in_a_cte_or_subquery_is_still_checked(workspace: Workspace) -> None:
    ws = _populate(workspace)
    analyst = _analyst(ws)

    for query in (
        "WITH o AS (SELECT * FROM dev.shop.orders) SELECT count(*) FROM o",
        "SELECT name FROM dev.shop.customers WHERE id IN (SELECT customer_id FROM dev.shop.orders)",
        "SELECT (SELECT max(amount) FROM dev.shop.orders) AS m",
        "DESCRIBE dev.shop.orders",
    ):
        with pytest.raises(PrivilegeMissing, match="SELECT"):
            analyst.sql(query)
    assert len(ws.audit.list(denied_only=True, principal="analyst", securable="dev.shop.orders")) == 4


def test_granting_select_on_the_schema_opens_the_join(workspace: Workspace) -> None:
    ws = _populate(workspace)
    analyst = _analyst(ws)
    ws.grants.grant("SELECT", "schema", "dev.shop", "analyst")

    result = analyst.sql(
        "SELECT c.name, sum(o.amount) AS total FROM dev.shop.customers c "
        "JOIN dev.shop.orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY c.name"
    )
    assert result.to_pylist() == [{"name": "ann", "total": 12.0}, {"name": "bob", "total": 11.0}]
    assert ws.audit.list(denied_only=True, principal="analyst") == []
