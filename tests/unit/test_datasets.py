"""The synthetic retail data set: deterministic, well-typed, dirty on purpose, and carrying churn."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakestack.datasets import CURRENCIES, UNKNOWN_CURRENCIES, Dirt, RetailData, churn_labels, make_retail
from lakestack.datasets.transactions import CUSTOMER_SCHEMA, LABEL_SCHEMA, TRANSACTION_SCHEMA, TRUTH_SCHEMA
from lakestack.errors import InvalidParameter

US_PER_DAY = 86_400_000_000


@pytest.fixture(scope="module")
def data() -> RetailData:
    return make_retail(2_000, 120, seed=7)


def _us(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.cast(pa.int64()).to_numpy(zero_copy_only=False))


def test_same_seed_same_data_and_another_seed_differs() -> None:
    a, b = make_retail(300, 60, seed=3), make_retail(300, 60, seed=3)
    assert a.customers.equals(b.customers)
    assert a.transactions.equals(b.transactions)
    assert a.truth.equals(b.truth)
    c = make_retail(300, 60, seed=4)
    assert not c.transactions.equals(a.transactions)
    assert not c.customers.equals(a.customers)


def test_schemas_and_shapes(data: RetailData) -> None:
    assert data.customers.schema == CUSTOMER_SCHEMA
    assert data.transactions.schema == TRANSACTION_SCHEMA
    assert data.truth.schema == TRUTH_SCHEMA
    assert data.transactions.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert data.customers.num_rows == data.truth.num_rows == 2_000
    assert pc.count_distinct(data.customers.column("customer_id")).as_py() == 2_000
    # ~0.08 purchases per customer and day, minus churners and late joiners.
    assert 8_000 < data.transactions.num_rows < 30_000
    assert data.end - data.start == timedelta(days=120)
    for column in ("transaction_id", "customer_id", "ts", "currency", "channel", "category", "status"):
        assert data.transactions.column(column).null_count == 0, column
    assert set(data.transactions.column("status").unique().to_pylist()) == {"completed", "refunded", "failed"}
    assert set(data.transactions.column("channel").unique().to_pylist()) == {"web", "app", "store"}
    ages = data.customers.column("age")
    assert pc.min(ages).as_py() >= 18
    assert pc.max(ages).as_py() <= 85


def test_transactions_are_sorted_inside_the_window_and_after_signup(data: RetailData) -> None:
    tx, customers = data.transactions, data.customers
    ts = _us(tx.column("ts"))
    assert np.all(np.diff(ts) >= 0)
    start_us = int(pa.scalar(data.start, pa.timestamp("us", tz="UTC")).cast(pa.int64()).as_py())
    assert ts.min() >= start_us
    assert ts.max() < start_us + 120 * US_PER_DAY
    assert pc.all(pc.is_in(tx.column("customer_id"), customers.column("customer_id"))).as_py()
    signup = dict(
        zip(customers.column("customer_id").to_pylist(), _us(customers.column("signup_ts")), strict=True)
    )
    buyer_signup = np.array([signup[c] for c in tx.column("customer_id").to_pylist()])
    assert np.all(ts > buyer_signup)


def test_dirt_rates_stay_within_bounds(data: RetailData) -> None:
    tx, dirt = data.transactions, Dirt()
    n = tx.num_rows
    amount = tx.column("amount")
    rates = {
        "null_amount": amount.null_count / n,
        "negative_amount": pc.sum(pc.less(amount, 0)).as_py() / n,
        "unknown_currency": pc.sum(pc.is_in(tx.column("currency"), pa.array(UNKNOWN_CURRENCIES))).as_py() / n,
    }
    for name, rate in rates.items():
        expected = getattr(dirt, name)
        assert 0.4 * expected < rate < 1.8 * expected, (name, rate)
    currencies = set(tx.column("currency").unique().to_pylist())
    assert currencies <= set(CURRENCIES) | set(UNKNOWN_CURRENCIES)
    assert set(CURRENCIES) <= currencies
    # Duplicates are exact re-deliveries, right after the original.
    duplicates = n - pc.count_distinct(tx.column("transaction_id")).as_py()
    assert duplicates == round(dirt.duplicate * (n - duplicates))
    ids = tx.column("transaction_id").to_pylist()
    repeated = [i for i in range(1, n) if ids[i] == ids[i - 1]]
    assert len(repeated) == duplicates
    assert all(tx.slice(i, 1).equals(tx.slice(i - 1, 1)) for i in repeated)


def test_clean_data_has_no_dirt() -> None:
    tx = make_retail(500, 60, seed=1, dirt=Dirt.clean()).transactions
    assert tx.column("amount").null_count == 0
    assert pc.min(tx.column("amount")).as_py() > 0
    assert pc.all(pc.is_in(tx.column("currency"), pa.array(CURRENCIES))).as_py()
    assert pc.count_distinct(tx.column("transaction_id")).as_py() == tx.num_rows


def test_churners_fade_and_then_stop_buying(data: RetailData) -> None:
    truth = data.truth
    churn_at = dict(
        zip(truth.column("customer_id").to_pylist(), truth.column("churn_ts").to_pylist(), strict=True)
    )
    churners = {c for c, at in churn_at.items() if at is not None}
    assert 0.1 < len(churners) / truth.num_rows < 0.45
    late, early, after = 0, 0, 0
    for customer, ts in zip(
        data.transactions.column("customer_id").to_pylist(),
        data.transactions.column("ts").to_pylist(),
        strict=True,
    ):
        at = churn_at[customer]
        if at is None:
            continue
        after += ts >= at
        if at - timedelta(days=14) <= ts < at:
            late += 1
        elif at - timedelta(days=70) <= ts < at - timedelta(days=56):
            early += 1
    assert after == 0
    # The two weeks before churning see far fewer purchases than two weeks two months earlier.
    assert late < 0.5 * early


def test_churn_propensity_is_higher_for_churners(data: RetailData) -> None:
    propensity = data.truth.column("churn_propensity").to_numpy()
    churned = data.truth.column("churn_ts").is_valid().to_numpy(zero_copy_only=False)
    assert np.all((propensity > 0) & (propensity < 1))
    assert propensity[churned].mean() > propensity[~churned].mean() + 0.1


def test_churn_labels_are_point_in_time_and_follow_the_truth(data: RetailData) -> None:
    as_of = data.end - timedelta(days=30)
    labels = churn_labels(data.customers, data.transactions, as_of)
    assert labels.schema == LABEL_SCHEMA
    assert labels.num_rows > 500
    assert set(labels.column("label_ts").to_pylist()) == {as_of}
    assert pc.count_distinct(labels.column("customer_id")).as_py() == labels.num_rows
    churn_at = dict(
        zip(
            data.truth.column("customer_id").to_pylist(),
            data.truth.column("churn_ts").to_pylist(),
            strict=True,
        )
    )
    truly = np.array([churn_at[c] is not None for c in labels.column("customer_id").to_pylist()])
    churned = labels.column("churned").to_numpy(zero_copy_only=False)
    assert churned[truly].mean() > 0.8
    assert churned[~truly].mean() < 0.25


def test_churn_labels_refuse_a_horizon_past_the_data(data: RetailData) -> None:
    with pytest.raises(InvalidParameter, match="runs past the last transaction"):
        churn_labels(data.customers, data.transactions, data.end - timedelta(days=10))


def test_naive_start_is_utc_and_bad_sizes_are_refused() -> None:
    naive = make_retail(50, 10, seed=0, start=datetime(2024, 3, 1))
    assert naive.start.utcoffset() == timedelta(0)
    assert naive.transactions.equals(make_retail(50, 10, seed=0, start=naive.start).transactions)
    with pytest.raises(InvalidParameter):
        make_retail(0, 10)
    with pytest.raises(InvalidParameter):
        make_retail(10, 0)


def test_five_thousand_customers_for_half_a_year_is_fast() -> None:
    began = time.perf_counter()
    data = make_retail(5_000, 180, seed=0)
    assert time.perf_counter() - began < 5.0  # ~0.3 s on a laptop; generous for busy CI runners
    assert data.transactions.num_rows > 50_000
