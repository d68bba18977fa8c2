"""lakestack end to end in well under a minute: bronze -> silver, expectations, merges, SQL, grants.

Run it with `make demo`, or `.venv/bin/python examples/demo.py --workspace /tmp/my-demo`.

The story: a retailer lands raw card transactions (bronze) as they arrive, cleans them into a
trustworthy table (silver) that analysts and, later, a churn model read. Along the way you see
the pieces a lakehouse gives you: Delta versions, data-quality expectations that warn, drop or
fail, an idempotent MERGE, SQL over three-level names, and grants that keep analysts on silver.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lakestack import Expectation, FeatureLookup, Workspace
from lakestack.cli.lineage import render as render_lineage
from lakestack.config import CONFIG_FILE
from lakestack.datasets import CURRENCIES, RetailData, churn_labels, make_retail
from lakestack.errors import ExpectationFailed, PermissionDenied
from lakestack.features import TrainingSet
from lakestack.tables.service import WriteResult

SEED = 42  # same seed, same data: the numbers below are reproducible
N_CUSTOMERS = 5_000
DAYS = 180
FIRST_LOAD_DAYS = 150  # the first load covers 150 days; a second, incremental load brings the rest

BRONZE_CUSTOMERS = "dev.bronze.customers"
BRONZE_TRANSACTIONS = "dev.bronze.transactions"
SILVER_TRANSACTIONS = "dev.silver.transactions"
CDF_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")

# Stored with the silver table, so they guard *every* writer, not only this pipeline.
# A NULL result counts as failing, hence the explicit IS NULL where NULL is acceptable.
SILVER_EXPECTATIONS = [
    Expectation(
        "has_keys", "transaction_id IS NOT NULL AND customer_id IS NOT NULL AND ts IS NOT NULL", "fail"
    ),
    Expectation("valid_amount", "amount IS NOT NULL AND amount > 0", "drop"),
    Expectation("known_currency", "currency IN ({})".format(", ".join(f"'{c}'" for c in CURRENCIES)), "drop"),
    Expectation("plausible_amount", "amount IS NULL OR amount < 5000", "warn"),
]

# A terminal sets the width; captured output (CI logs) gets room for the wide tables.
console = Console(width=None if sys.stdout.isatty() else 120)
_steps = itertools.count(1)


def step(title: str) -> None:
    console.print()
    console.rule(f"[bold cyan]{next(_steps)}. {title}", align="left")


# --- a fresh workspace ----------------------------------------------------------------------------


def fresh_workspace(path: Path) -> Workspace:
    """Start from nothing so every run tells the same story (versions start at 0)."""
    step(f"A fresh embedded workspace in {path}")
    if path.exists():
        # Only ever delete something that is recognisably a lakestack workspace.
        if not (path / CONFIG_FILE).exists() and any(path.iterdir()):
            raise SystemExit(f"{path} exists and is not a lakestack workspace; refusing to delete it.")
        shutil.rmtree(path)
    ws = Workspace.init(path)
    console.print(f"catalogs: {', '.join(c.full_name for c in ws.catalogs.list())} (one per environment)")
    console.print(f"metastore and Delta tables live under {ws.folder}/; acting as [bold]{ws.caller.name}[/]")
    return ws


# --- the data -------------------------------------------------------------------------------------


def generate() -> RetailData:
    """Synthetic but realistic: churners buy less and less, then stop; a little dirt is mixed in."""
    step("Generate a retail data set")
    data = make_retail(N_CUSTOMERS, DAYS, seed=SEED)
    tx = data.transactions
    console.print(
        f"{data.customers.num_rows:,} customers and {tx.num_rows:,} transactions from {data.start:%Y-%m-%d} "
        f"to {data.end:%Y-%m-%d} (seed {SEED})"
    )
    amount, ids = tx.column("amount"), tx.column("transaction_id")
    dirt = {
        "null amounts": tx.num_rows - pc.count(amount).as_py(),
        "negative amounts": pc.sum(pc.less(amount, 0)).as_py(),
        "unknown currencies": tx.num_rows
        - pc.sum(pc.is_in(tx.column("currency"), pa.array(CURRENCIES))).as_py(),
        "re-delivered transaction ids": tx.num_rows - pc.count_distinct(ids).as_py(),
    }
    console.print("dirt the cleaning must catch: " + ", ".join(f"{n} {what}" for what, n in dirt.items()))
    return data


# --- bronze: land the raw data as it arrives ------------------------------------------------------


def split_loads(transactions: pa.Table, first_end: pa.TimestampScalar) -> tuple[pa.Table, pa.Table]:
    """Two loads. The second re-sends the last day of the first, as incremental feeds with a
    safety overlap do; the silver MERGE must turn those repeats into updates, not new rows."""
    ts = transactions.column("ts")
    first = transactions.filter(pc.less(ts, first_end))
    overlap_start = pa.scalar(first_end.as_py() - timedelta(days=1), first_end.type)
    second = transactions.filter(pc.greater_equal(ts, overlap_start))
    return first, second


def land_bronze(ws: Workspace, customers: pa.Table, first_load: pa.Table) -> None:
    """Bronze keeps what the source sent, dirt included: it is the replayable record."""
    step("Bronze: land the raw customers and the first load of transactions")
    ws.schemas.create("dev.bronze", comment="Raw data as delivered; never edited")
    ws.tables.create(BRONZE_CUSTOMERS, data=customers, comment="One row per customer")
    info = ws.tables.create(BRONZE_TRANSACTIONS, data=first_load, comment="Payment attempts, as sent")
    console.print(f"{BRONZE_CUSTOMERS}: {customers.num_rows:,} rows")
    console.print(f"{BRONZE_TRANSACTIONS}: {first_load.num_rows:,} rows, version {info.version}")
    console.print(escape("columns: " + ", ".join(f"{f.name} ({f.type})" for f in info.schema)))


def land_more(ws: Workspace, second_load: pa.Table) -> None:
    step("Bronze: the next load arrives (new days, plus one day re-sent)")
    result = ws.tables.write(BRONZE_TRANSACTIONS, second_load)  # append: bronze never rewrites
    console.print(f"{BRONZE_TRANSACTIONS}: appended {result.rows_written:,} rows -> version {result.version}")


# --- silver: clean, de-duplicate, merge -----------------------------------------------------------


def create_silver(ws: Workspace) -> None:
    step("Silver: an empty table that carries its expectations")
    ws.schemas.create("dev.silver", comment="Cleaned, de-duplicated, ready to query")
    schema = ws.tables.get(BRONZE_TRANSACTIONS).schema
    ws.tables.create(SILVER_TRANSACTIONS, schema=schema, expectations=SILVER_EXPECTATIONS)
    for e in SILVER_EXPECTATIONS:
        console.print(f"  [bold]{e.action:<4}[/] {e.name}: {e.condition}")


def first_per_key(rows: pa.Table, key: str) -> pa.Table:
    """Keep the first row per key. A Delta MERGE needs a unique key in its source: it would
    insert both copies of an unseen key, or refuse to update one target row twice."""
    _, first_seen = np.unique(rows.column(key).to_numpy(zero_copy_only=False), return_index=True)
    return rows.take(np.sort(first_seen))


def refresh_silver(ws: Workspace, from_version: int) -> int:
    """Bring silver up to date with bronze; returns the next bronze version to read.

    Only what bronze gained since `from_version` is read, from its change data feed, so each
    refresh costs the size of the new data, not of the table.
    """
    changes = ws.tables.changes(BRONZE_TRANSACTIONS, starting_version=from_version)
    last_read = pc.max(changes.column("_commit_version")).as_py()
    # Bronze is append-only, so every change is an insert.
    new_rows = changes.drop_columns(list(CDF_COLUMNS))
    unique = first_per_key(new_rows, "transaction_id")
    step(f"Silver: merge bronze versions {from_version}..{last_read} into {SILVER_TRANSACTIONS}")
    repeats = new_rows.num_rows - unique.num_rows
    console.print(f"read {new_rows.num_rows:,} new bronze rows; {repeats} repeated within the batch")
    result = ws.tables.merge(SILVER_TRANSACTIONS, unique, keys=["transaction_id"])
    show_write(result)
    return int(last_read) + 1


SILVER_REPORT = f"""
name: silver report
description: Counts silver's rows per currency whenever silver gets a new version
trigger: {{table_update: {{table_names: [{SILVER_TRANSACTIONS}]}}}}
tasks:
  - task_key: per_currency
    sql_task:
      query: >
        SELECT currency, count(*) AS transactions, round(sum(amount), 2) AS amount
        FROM {SILVER_TRANSACTIONS} GROUP BY currency ORDER BY transactions DESC
"""  # noqa: S608 - constant table names, no input


def watch_silver(ws: Workspace) -> None:
    step("Job with a table-update trigger: a report that runs whenever silver changes")
    job = ws.jobs.create(SILVER_REPORT)
    console.print(f"created job '{job.name}'; `lakestack scheduler` starts it on new versions of silver")
    console.print(f"scheduler pass now: {len(ws.scheduler(table_poll_seconds=0).run_once())} run(s) due")


def scheduler_fires(ws: Workspace) -> None:
    step("Scheduler: silver has a new version, so the report job runs (exactly once for it)")
    scheduler = ws.scheduler(table_poll_seconds=0)
    (event,) = scheduler.run_once()  # the run goes on in a thread of this process
    while (run := ws.jobs.get_run(event.run_id)).state not in ("SUCCESS", "FAILED", "TIMEDOUT", "CANCELED"):
        time.sleep(0.1)
    console.print(f"{event.action} run {event.run_id} of '{event.job_name}' ({event.detail}): {run.state}")
    output = run.task("per_currency").output or {}
    table = Table(*output.get("columns", []), title="per_currency output")
    for row in output.get("rows", []):
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)
    console.print(f"another pass: {len(scheduler.run_once())} run(s) due (the version was claimed)")


def show_write(result: WriteResult) -> None:
    table = Table("expectation", "action", "passed", "failed", "effect", title=f"version {result.version}")
    for r in result.expectations:
        effect = {"drop": "rows dropped", "warn": "kept, counted", "fail": "would refuse the write"}[r.action]
        table.add_row(r.name, r.action, f"{r.passed:,}", f"{r.failed:,}", effect if r.failed else "-")
    console.print(table)
    inserted = result.metrics.get("num_target_rows_inserted", result.rows_written)
    updated = result.metrics.get("num_target_rows_updated", 0)
    console.print(
        f"wrote {result.rows_written:,} clean rows: {inserted:,} new, {updated:,} updated (already there)"
    )


def refuse_bad_batch(ws: Workspace, some_rows: pa.Table) -> None:
    """A `fail` expectation rejects the whole write, and the table stays exactly as it was."""
    step("Silver: a careless backfill is refused whole")
    before = ws.tables.get(SILVER_TRANSACTIONS).version
    broken = some_rows.set_column(
        some_rows.schema.get_field_index("ts"),
        "ts",
        pa.nulls(some_rows.num_rows, some_rows.schema.field("ts").type),
    )
    try:
        ws.tables.merge(SILVER_TRANSACTIONS, broken, keys=["transaction_id"])
    except ExpectationFailed as exc:
        console.print(f"[yellow]ExpectationFailed:[/] {escape(exc.message)}")
    after = ws.tables.get(SILVER_TRANSACTIONS).version
    console.print(f"silver version before {before}, after {after}: nothing was written")


# --- SQL ------------------------------------------------------------------------------------------

# ws.sql works in UTC, so months are UTC months whatever the machine's zone.
REVENUE_SQL = """
SELECT c.country, t.currency, strftime(t.ts, '%Y-%m') AS month, round(sum(t.amount), 0) AS revenue
FROM dev.silver.transactions AS t
JOIN dev.bronze.customers AS c USING (customer_id)
WHERE t.status = 'completed'
GROUP BY ALL
ORDER BY c.country, month
"""

# A first look at churn: who has gone quiet for 30 days before the end of the data, per plan?
QUIET_SQL = """
WITH last_purchase AS (
    SELECT customer_id, max(ts) AS last_ts
    FROM dev.silver.transactions WHERE status = 'completed' GROUP BY customer_id
), data_end AS (SELECT max(ts) AS end_ts FROM dev.silver.transactions)
SELECT c.plan, count(*) AS customers,
       round(100 * avg(CAST(coalesce(l.last_ts < d.end_ts - INTERVAL 30 DAY, true) AS INTEGER)), 1)
           AS pct_quiet_30d
FROM last_purchase AS l JOIN dev.bronze.customers AS c USING (customer_id), data_end AS d
GROUP BY c.plan ORDER BY pct_quiet_30d DESC
"""


def run_queries(ws: Workspace) -> None:
    step("SQL: revenue per country and month (silver joined with customers)")
    revenue = ws.sql(REVENUE_SQL).to_pylist()
    months = sorted({r["month"] for r in revenue})
    pivot = Table("country", "currency", *months, title="completed revenue, local currency")
    for (country, currency), rows in itertools.groupby(revenue, key=lambda r: (r["country"], r["currency"])):
        by_month = {r["month"]: r["revenue"] for r in rows}
        pivot.add_row(country, currency, *(f"{by_month.get(m, 0):,.0f}" for m in months))
    console.print(pivot)
    console.print(
        "[dim]warn keeps rows: the few 100x amounts plausible_amount counted still inflate some months[/]"
    )

    step("SQL: customers gone quiet, per plan")
    print_arrow(ws.sql(QUIET_SQL), "free-plan customers go quiet more often: a churn signal to model later")


def print_arrow(result: pa.Table, title: str) -> None:
    table = Table(*result.column_names, title=title)
    for row in result.to_pylist():
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    console.print(table)


# --- grants ---------------------------------------------------------------------------------------


def grants_moment(ws: Workspace) -> None:
    """Analysts read silver only: bronze holds raw, unvalidated (and possibly personal) data."""
    step('Grants: principal "analyst" may read dev.silver, not dev.bronze')
    ws.principals.create("analyst", display_name="A data analyst")
    # Reaching a table needs USE_CATALOG on its catalog and USE_SCHEMA on its schema;
    # SELECT on the schema covers every table in it, now and later.
    for privilege, kind, name in [("USE_CATALOG", "catalog", "dev"), ("USE_SCHEMA", "schema", "dev.silver"),
                                  ("SELECT", "schema", "dev.silver")]:  # fmt: skip
        ws.grants.grant(privilege, kind, name, "analyst")
        console.print(f"granted {privilege} on {kind} {name} to analyst")

    analyst = ws.as_principal("analyst")  # same workspace, acting as the analyst
    rows = analyst.sql("SELECT count(*) AS n FROM dev.silver.transactions").column("n")[0].as_py()
    console.print(f"[green]analyst reads {SILVER_TRANSACTIONS}:[/] {rows:,} rows")
    try:
        analyst.sql("SELECT count(*) AS n FROM dev.bronze.transactions")
    except PermissionDenied as exc:
        console.print(f"[red]analyst reads {BRONZE_TRANSACTIONS}: PermissionDenied:[/] {escape(exc.message)}")
    denied = ws.audit.list(principal="analyst", denied_only=True, limit=1)
    console.print(f"the audit log kept the denial: {denied[0].action} on {denied[0].securable_name}")


# --- summary --------------------------------------------------------------------------------------


# --- features: point-in-time training data ---------------------------------------------------

ACTIVITY = "dev.churn.customer_activity"
PROFILE = "dev.churn.customer_profile"

JOB_FILE = Path(__file__).resolve().parent / "churn_job" / "job.yml"
MODEL = "dev.churn.model"


def run_pipeline_job(ws: Workspace, data: RetailData) -> None:
    """The feature and training steps as a job (examples/churn_job): each task in its own process."""
    step("Job: features -> train -> good enough? -> promote, each task in its own process")
    job = ws.jobs.create(JOB_FILE)
    parameters = {
        "start": data.start.isoformat(),
        "end": data.end.isoformat(),
        "label_date": (data.end - timedelta(days=45)).isoformat(),
    }
    console.print(f"created job '{job.name}' from examples/churn_job/job.yml (tasks in pipeline.py)")
    run = ws.jobs.run_now(job.name, parameters)
    table = Table("task", "state", "attempt", "seconds", "task values / output", title=f"run {run.run_id}")
    for task in run.tasks:
        shown = task.task_values or task.output or task.condition_outcome or ""
        seconds = f"{task.duration_seconds:.1f}" if task.duration_seconds is not None else "-"
        table.add_row(task.task_key, task.state, str(task.attempt), seconds, escape(str(shown)))
    console.print(table)
    if run.state != "SUCCESS":
        raise SystemExit(f"the job ended {run.state}: see lakestack jobs logs {run.run_id} TASK")
    values = run.task("train").task_values
    console.print(
        f"train: test AUC {values['test_auc']:.3f} on {values['labels']:,} labels; "
        f"registered {values['model_uri']}, handed to promote as {{{{tasks.train.values.model_uri}}}}"
    )


def training_set(ws: Workspace, data: RetailData) -> TrainingSet:
    """Labels at one moment, features as they were just before it: no leakage from the future."""
    step("Training set: churn labels joined with the job's features as of each label's time")
    labels = churn_labels(data.customers, data.transactions, as_of=data.end - timedelta(days=45))
    training = ws.features.create_training_set(
        labels,
        [
            FeatureLookup(ACTIVITY, "customer_id", timestamp_lookup_key="label_ts",
                          lookback_window=timedelta(days=7), default_values={"purchases_28d": 0}),
            FeatureLookup(PROFILE, "customer_id", feature_names=["age"]),
        ],
        label="churned",
        exclude_columns=["customer_id", "label_ts"],  # identifiers, not signal
    )  # fmt: skip
    df = training.load_df()
    churned = pc.sum(df.column("churned")).as_py()
    console.print(
        f"{df.num_rows:,} labelled customers ({churned:,} churned) with features "
        f"{', '.join(training.feature_columns)}"
    )
    pinned = ", ".join(f"{name} @ v{version}" for name, version in training.table_versions.items())
    console.print(f"pinned feature table versions (load_df() gives the same rows later): {pinned}")
    means = df.group_by("churned").aggregate([("spend_28d", "mean"), ("purchases_28d", "mean")])
    by_label = means.sort_by("churned")
    for column in ("spend_28d_mean", "purchases_28d_mean"):
        by_label = by_label.set_column(
            by_label.column_names.index(column), column, pc.round(by_label.column(column), 2)
        )
    print_arrow(by_label, "churners were already buying less before the label date")
    return training


def score(ws: Workspace, data: RetailData) -> None:
    """Batch scoring with the champion: only keys and a time go in."""
    step(f"Scoring: {MODEL}@champion looks its features up by key")
    import logging

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # MLflow is chatty; the table says it all
    customers = data.customers.column("customer_id").slice(0, 5)
    now = pa.array([data.end] * len(customers), pa.timestamp("us", tz="UTC"))
    scored = ws.models.score_batch(
        f"models:/{MODEL}@champion", pa.table({"customer_id": customers, "label_ts": now})
    )
    print_arrow(scored.drop_columns(["label_ts"]), "score_batch: features looked up by key, as of now")


def show_lineage(ws: Workspace) -> None:
    """What made the champion, as `lakestack lineage` prints it."""
    step(f"Lineage: what made {MODEL}@champion")
    console.print(render_lineage(ws.lineage.upstream(f"{MODEL}@champion")))


def publish_online(ws: Workspace, data: RetailData) -> None:
    """Publish the features for low-latency lookups by key (what serving will read)."""
    step("Online store: publish the feature tables, look customers up by key")
    for name in (ACTIVITY, PROFILE):
        result = ws.features.publish_table(name)  # the data is historical: no TTL, or all would be null
        console.print(
            f"{name}: {result.mode} publish of v{result.to_version}, {result.rows_written:,} keys "
            f"in {result.seconds:.2f} s to {result.store}"
        )
    again = ws.features.publish_table(ACTIVITY)
    console.print(f"publishing {ACTIVITY} again: up to date = {again.up_to_date}, {again.rows_written} rows")
    ids = data.customers.column("customer_id").slice(0, 3).to_pylist()
    found = ws.features.get_online_features(ACTIVITY, [{"customer_id": i} for i in ids])
    print_arrow(found, "newest weekly activity per customer, from the online store")
    lookup = ws.features.online_lookup(PROFILE)
    started = time.perf_counter()
    for i in itertools.islice(itertools.cycle(ids), 2_000):
        lookup.get_row({"customer_id": i})
    per_call = (time.perf_counter() - started) / 2_000 * 1e3
    console.print(f"{PROFILE}: single-key lookups take {per_call:.3f} ms each (2,000 in a row)")


def all_tables(ws: Workspace) -> Iterator[str]:
    for schema in ("dev.bronze", "dev.silver", "dev.churn"):
        yield from (t.full_name for t in ws.tables.list(schema))


def summary(ws: Workspace, seconds: float) -> None:
    step(f"Summary (the demo took {seconds:.1f} s)")
    table = Table("table", "version", "rows", "expectations at the latest write", title="tables in dev")
    for name in all_tables(ws):
        # The name comes from the catalog listing, so formatting it into SQL is safe.
        count = ws.sql(f"SELECT count(*) AS n FROM {name}").column("n")[0].as_py()  # noqa: S608
        latest = ws.tables.history(name, limit=1)[0]
        checks = ", ".join(f"{e['name']} ({e['action']}) {e['failed']:,} failed" for e in latest.expectations)
        table.add_row(name, str(latest.version), f"{count:,}", checks or "-")
    console.print(table)


def where_next(path: Path) -> None:
    w = shlex.quote(str(path))
    query = shlex.quote("SELECT status, count(*) AS n FROM dev.silver.transactions GROUP BY status")
    refused = shlex.quote("SELECT count(*) AS n FROM dev.bronze.customers")
    console.print("\n[bold]Where to look next[/]")
    for command, why in [
        (f"tables history {SILVER_TRANSACTIONS}", "every version, who wrote it, expectation counts"),
        (f"tables head {SILVER_TRANSACTIONS} --version 1", "time travel: silver after the first merge"),
        (f"sql {query}", "ask your own questions"),
        ("grants show schema dev.silver", "who may read silver"),
        (f"--as analyst sql {refused}", "see the denial for yourself"),
        ("audit ls --denied", "every refused call, including the analyst's"),
        ("jobs runs 'churn pipeline'", "the job's runs; then: jobs logs RUN_ID train"),
        ("runs ls churn", "the training run: metrics, code version"),
        ("models versions dev.churn.model", "the registered model and its champion alias"),
        (f"lineage {SILVER_TRANSACTIONS} --downstream", "everything made from silver, down to the model"),
        (f"features lookup {PROFILE} --key customer_id=100001", "the online store, as serving sees it"),
    ]:
        # soft_wrap: never break a command line, so it can be copied and pasted.
        console.print(f"  [green]lakestack -w {escape(w)} {escape(command)}[/]\n      {why}", soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workspace", type=Path, default=Path("demo-workspace"), help="recreated on every run"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()

    ws = fresh_workspace(args.workspace)
    data = generate()
    first_end = pa.scalar(
        data.start + timedelta(days=FIRST_LOAD_DAYS), data.transactions.schema.field("ts").type
    )
    first_load, second_load = split_loads(data.transactions, first_end)

    land_bronze(ws, data.customers, first_load)
    create_silver(ws)
    next_version = refresh_silver(ws, from_version=0)
    watch_silver(ws)
    land_more(ws, second_load)
    refresh_silver(ws, from_version=next_version)
    scheduler_fires(ws)
    refuse_bad_batch(ws, second_load.slice(0, 5))  # five real rows, about to lose their timestamps
    run_queries(ws)
    grants_moment(ws)
    run_pipeline_job(ws, data)
    training_set(ws, data)
    score(ws, data)
    show_lineage(ws)
    publish_online(ws, data)
    summary(ws, time.perf_counter() - started)
    where_next(args.workspace)
    ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
