"""A seeded, synthetic retail data set: customers, their card transactions, and who churns.

```python
data = make_retail(n_customers=5_000, days=180, seed=42)
data.customers      # one row per customer (a dimension table)
data.transactions   # one row per payment attempt, with a little realistic dirt
data.truth          # the hidden churn process, for evaluation only (a model never sees it)
labels = churn_labels(data.customers, data.transactions, as_of=data.end - timedelta(days=30))
```

How the behaviour is generated, so that churn models have something real to find:

- every customer has a purchase rate (per day) set by segment, plan and a personal factor, and a
  weekly rhythm (weekends busier);
- a latent *churn propensity* (higher on the free plan, for the young, for low spenders, without
  marketing opt-in) decides who churns inside the window; a churner's purchase rate decays over
  the weeks before the churn day, refunds and failed payments become more frequent, and after the
  churn day the customer never buys again;
- customers who sign up during the window only buy after signing up.

Dirt is added at small, controlled rates (see :class:`Dirt`) so a bronze -> silver cleaning step
has something to catch. Everything is vectorised with numpy and pyarrow and deterministic for a
given seed; nothing is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakestack.errors import InvalidParameter

DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)
US_PER_DAY = 86_400_000_000
FIRST_CUSTOMER_ID = 100_001

# Country -> (currency, share of customers). Amounts are in the country's currency.
COUNTRIES: dict[str, tuple[str, float]] = {
    "US": ("USD", 0.34),
    "GB": ("GBP", 0.14),
    "DE": ("EUR", 0.13),
    "FR": ("EUR", 0.10),
    "CA": ("CAD", 0.08),
    "ES": ("EUR", 0.08),
    "AU": ("AUD", 0.07),
    "NL": ("EUR", 0.06),
}
LOCAL_PER_USD = {"USD": 1.0, "GBP": 0.79, "EUR": 0.92, "CAD": 1.35, "AUD": 1.52}
CURRENCIES: tuple[str, ...] = tuple(sorted(LOCAL_PER_USD))
# What a broken upstream system sends instead of an ISO 4217 code.
UNKNOWN_CURRENCIES: tuple[str, ...] = ("XXX", "usd", "EURO")

SEGMENTS = ("budget", "mainstream", "premium")
SEGMENT_SHARE = (0.35, 0.50, 0.15)
SEGMENT_RATE = (0.07, 0.09, 0.12)  # purchases per day before the plan and personal factors
SEGMENT_PRICE = (-0.25, 0.0, 0.35)  # shift of log basket size

PLANS = ("free", "plus", "premium")
PLAN_GIVEN_SEGMENT = ((0.70, 0.25, 0.05), (0.50, 0.35, 0.15), (0.25, 0.40, 0.35))
PLAN_RATE = (0.8, 1.1, 1.4)

CATEGORIES = ("grocery", "apparel", "electronics", "home", "beauty", "sports", "toys")
CATEGORY_SHARE = (0.34, 0.16, 0.08, 0.12, 0.12, 0.10, 0.08)
CATEGORY_PRICE_USD = (35.0, 60.0, 180.0, 75.0, 28.0, 55.0, 32.0)  # median basket

CHANNELS = ("web", "app", "store")
STATUSES = ("completed", "refunded", "failed")
WEEKDAY_FACTOR = (0.90, 0.95, 0.95, 1.00, 1.10, 1.25, 1.15)  # Monday .. Sunday
HOUR_WEIGHT = (1, 1, 1, 1, 1, 2, 3, 5, 6, 7, 8, 9, 10, 9, 8, 8, 8, 9, 10, 11, 11, 9, 6, 3)

CUSTOMER_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("signup_ts", pa.timestamp("us", tz="UTC")),
        pa.field("country", pa.string()),
        pa.field("segment", pa.string()),
        pa.field("plan", pa.string()),
        pa.field("age", pa.int32()),
        pa.field("marketing_opt_in", pa.bool_()),
    ]
)
TRANSACTION_SCHEMA = pa.schema(
    [
        pa.field("transaction_id", pa.string()),
        pa.field("customer_id", pa.int64()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("amount", pa.float64()),
        pa.field("currency", pa.string()),
        pa.field("channel", pa.string()),
        pa.field("category", pa.string()),
        pa.field("status", pa.string()),
    ]
)
TRUTH_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("churn_propensity", pa.float64()),
        pa.field("churn_ts", pa.timestamp("us", tz="UTC")),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("label_ts", pa.timestamp("us", tz="UTC")),
        pa.field("churned", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class Dirt:
    """Rates (fractions of transactions) of the defects a cleaning step should catch.

    - ``null_amount``: the amount is missing;
    - ``negative_amount``: the amount has the wrong sign;
    - ``outlier_amount``: the amount is 100 times too large (cents entered as units);
    - ``unknown_currency``: the currency is not an ISO code we know (one of UNKNOWN_CURRENCIES);
    - ``duplicate``: an exact copy of the row is delivered again (same transaction_id).
    """

    null_amount: float = 0.004
    negative_amount: float = 0.006
    outlier_amount: float = 0.001
    unknown_currency: float = 0.003
    duplicate: float = 0.002

    @classmethod
    def clean(cls) -> Dirt:
        """No dirt at all."""
        return cls(0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class RetailData:
    """The generated tables, and the window [start, end) the transactions cover.

    ``customers`` (one row per customer):
        customer_id (int64, from 100001), signup_ts (when they joined; UTC, may be before
        ``start``), country (ISO 3166 alpha-2), segment (budget, mainstream, premium: price
        sensitivity), plan (free, plus, premium: loyalty membership), age (years, 18-85),
        marketing_opt_in (accepts marketing e-mail).
    ``transactions`` (one row per payment attempt, sorted by ts):
        transaction_id (string "T000000001", unique except for the injected duplicates),
        customer_id, ts (when the payment happened; UTC, microseconds), amount (float64 in the
        local currency, 2 decimals; dirt: null, negative or 100x), currency (ISO 4217 of the
        customer's country; dirt: unknown codes), channel (web, app, store), category (grocery,
        apparel, electronics, home, beauty, sports, toys), status (completed, refunded, failed).
    ``truth`` (one row per customer; what generated the data, never a model input):
        customer_id, churn_propensity (probability of churning in the window), churn_ts (the
        moment after which the customer never buys again; null when they do not churn).
    """

    customers: pa.Table
    transactions: pa.Table
    truth: pa.Table
    start: datetime
    end: datetime


def make_retail(
    n_customers: int,
    days: int,
    seed: int = 0,
    start: datetime = DEFAULT_START,
    dirt: Dirt | None = None,
) -> RetailData:
    """Generate `n_customers` customers and `days` days of their transactions from `start`.

    Deterministic for a given (n_customers, days, seed, start, dirt). About 0.08 transactions per
    customer per day; 5,000 customers x 180 days (~70k rows) take well under a second.
    """
    if n_customers < 1 or days < 1:
        raise InvalidParameter(
            f"make_retail needs n_customers >= 1 and days >= 1 (got {n_customers}, {days})."
        )
    start = _utc(start)
    dirt = dirt if dirt is not None else Dirt()
    rng = np.random.default_rng(seed)
    start_us = _to_us(start)
    people = _people(rng, n_customers, days, start_us)
    rows = _purchases(rng, people, days, start, start_us)
    transactions = _add_dirt(rng, rows, dirt)
    truth = pa.Table.from_arrays(
        [
            pa.array(people.customer_id),
            pa.array(people.propensity),
            _timestamps(start_us + people.churn_day * US_PER_DAY, mask=~people.churns),
        ],
        schema=TRUTH_SCHEMA,
    )
    return RetailData(people.table, transactions, truth, start, start + timedelta(days=days))


def churn_labels(
    customers: pa.Table,
    transactions: pa.Table,
    as_of: datetime,
    horizon_days: int = 30,
    lookback_days: int = 90,
) -> pa.Table:
    """Point-in-time churn labels from observed behaviour only: (customer_id, label_ts, churned).

    A customer gets a label when they signed up before `as_of` and completed a purchase in the
    `lookback_days` before it; ``churned`` is true when they complete no purchase in the
    `horizon_days` from `as_of` on. Features for a label must use only data before ``label_ts``.
    Raises when the horizon runs past the last transaction (the label would be a guess).
    """
    as_of_us = _to_us(_utc(as_of))
    horizon_end = as_of_us + horizon_days * US_PER_DAY
    # Only completed purchases count; rows without a customer or time cannot be placed.
    status = transactions.column("status").cast(pa.string())
    usable = pc.fill_null(
        pc.and_(pc.equal(status, "completed"), pc.is_valid(transactions.column("customer_id"))), False
    )
    bought = transactions.filter(pc.and_(usable, pc.is_valid(transactions.column("ts"))))
    ts = _int_us(bought.column("ts"))
    if ts.size == 0 or horizon_end > int(ts.max()) + US_PER_DAY:
        raise InvalidParameter(
            f"churn_labels: the {horizon_days}-day horizon from {as_of.isoformat()} runs past the last "
            "transaction; pick an earlier as_of or a shorter horizon."
        )
    buyer = bought.column("customer_id").to_numpy()
    before = np.unique(buyer[(ts >= as_of_us - lookback_days * US_PER_DAY) & (ts < as_of_us)])
    after = np.unique(buyer[(ts >= as_of_us) & (ts < horizon_end)])
    signed_up = customers.column("customer_id").to_numpy()[_int_us(customers.column("signup_ts")) < as_of_us]
    eligible = np.intersect1d(before, signed_up)
    return pa.Table.from_arrays(
        [
            pa.array(eligible, pa.int64()),
            _timestamps(np.full(eligible.size, as_of_us, dtype=np.int64)),
            pa.array(~np.isin(eligible, after)),
        ],
        schema=LABEL_SCHEMA,
    )


# --- customers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _People:
    """The customers table plus the per-customer latent numbers the transactions need."""

    table: pa.Table
    customer_id: np.ndarray
    signup_us: np.ndarray
    country: np.ndarray  # index into COUNTRIES
    segment: np.ndarray
    age: np.ndarray
    rate: np.ndarray  # purchases per day
    propensity: np.ndarray
    churns: np.ndarray  # churns inside the window
    churn_day: np.ndarray  # first day without purchases (days after start; `days` when no churn)
    decay_days: np.ndarray  # how long the purchase rate fades before the churn day
    fade_start: np.ndarray  # the day the fading starts (inf when no churn)


def _people(rng: np.random.Generator, n: int, days: int, start_us: int) -> _People:
    customer_id = np.arange(FIRST_CUSTOMER_ID, FIRST_CUSTOMER_ID + n, dtype=np.int64)
    country = rng.choice(len(COUNTRIES), n, p=[share for _, share in COUNTRIES.values()])
    segment = rng.choice(len(SEGMENTS), n, p=SEGMENT_SHARE)
    plan = _pick_rows(rng, np.asarray(PLAN_GIVEN_SEGMENT)[segment])
    age = np.clip(np.rint(rng.normal(41, 13, n)), 18, 85).astype(np.int32)
    opt_in = rng.random(n) < 0.55
    # Three in four customers are already there when the window opens; the rest join during it.
    joined_before = rng.random(n) < 0.75
    signup_day = np.where(joined_before, -rng.uniform(1, 730, n), rng.uniform(0, 0.85 * days, n))
    signup_us = start_us + (signup_day * US_PER_DAY).astype(np.int64)

    personal = rng.lognormal(0.0, 0.5, n)
    rate = np.asarray(SEGMENT_RATE)[segment] * np.asarray(PLAN_RATE)[plan] * personal
    logit = (
        -1.3
        + 0.9 * (plan == 0)
        - 0.7 * (plan == 2)
        + 0.025 * (35 - age)
        - 0.5 * opt_in
        - 0.8 * np.log(personal)
        + rng.normal(0, 0.5, n)
    )
    propensity = 1.0 / (1.0 + np.exp(-logit))
    # A churner needs three weeks of history first; too-late joiners simply do not churn here.
    first_possible = np.maximum(np.ceil(signup_day), 0) + 21
    churns = (rng.random(n) < propensity) & (first_possible < days)
    churn_day = np.where(churns, np.floor(first_possible + rng.random(n) * (days - first_possible)), days)
    churn_day = churn_day.astype(np.int64)
    decay_days = rng.uniform(20, 60, n)
    fade_start = np.where(churns, churn_day - decay_days, np.inf)

    table = pa.Table.from_arrays(
        [
            pa.array(customer_id),
            _timestamps(signup_us),
            _labels(tuple(COUNTRIES), country),
            _labels(SEGMENTS, segment),
            _labels(PLANS, plan),
            pa.array(age),
            pa.array(opt_in),
        ],
        schema=CUSTOMER_SCHEMA,
    )
    return _People(
        table,
        customer_id,
        signup_us,
        country,
        segment,
        age,
        rate,
        propensity,
        churns,
        churn_day,
        decay_days,
        fade_start,
    )


# --- transactions -------------------------------------------------------------------------


def _purchases(
    rng: np.random.Generator, people: _People, days: int, start: datetime, start_us: int
) -> pa.Table:
    """Clean transactions: Poisson counts per customer and day, then one row per purchase."""
    day = np.arange(days)
    weekly = np.asarray(WEEKDAY_FACTOR)[(start.weekday() + day) % 7]
    signup_day = (people.signup_us - start_us) // US_PER_DAY
    active = (day[None, :] >= signup_day[:, None]) & (day[None, :] < people.churn_day[:, None])
    # Before churning, the rate fades exponentially to ~8% over the customer's decay period.
    fading = np.clip((day[None, :] - people.fade_start[:, None]) / people.decay_days[:, None], 0, 1)
    rates = people.rate[:, None] * weekly[None, :] * np.exp(-2.5 * fading) * active
    counts = rng.poisson(rates)

    who, when = np.nonzero(counts)
    repeat = counts[who, when]
    who, when = np.repeat(who, repeat), np.repeat(when, repeat)
    m = who.size
    hour = rng.choice(24, m, p=np.asarray(HOUR_WEIGHT) / sum(HOUR_WEIGHT))
    ts = start_us + when * US_PER_DAY + hour * 3_600_000_000 + rng.integers(0, 3_600_000_000, m)
    # On the signup day, buy only after signing up.
    ts = np.maximum(ts, people.signup_us[who] + rng.integers(60_000_000, 1_800_000_000, m))

    category = rng.choice(len(CATEGORIES), m, p=CATEGORY_SHARE)
    country = people.country[who]
    currency = np.asarray([currency for currency, _ in COUNTRIES.values()])[country]
    usd = np.exp(
        np.log(np.asarray(CATEGORY_PRICE_USD)[category])
        + np.asarray(SEGMENT_PRICE)[people.segment[who]]
        + rng.normal(0, 0.45, m)
    )
    fx = np.asarray([LOCAL_PER_USD[currency] for currency, _ in COUNTRIES.values()])[country]
    amount = np.round(usd * fx, 2)

    p_app = np.clip(0.60 - 0.009 * (people.age[who] - 18), 0.05, None)
    u = rng.random(m)
    channel = np.where(u < p_app, 1, np.where(u < p_app + 0.25, 2, 0))
    # Unhappy customers on their way out ask for refunds and have payments fail more often.
    fading_row = when >= people.fade_start[who]
    p_refund, p_failed = np.where(fading_row, 0.08, 0.03), np.where(fading_row, 0.04, 0.02)
    u = rng.random(m)
    status = np.where(u < p_refund, 1, np.where(u < p_refund + p_failed, 2, 0))

    order = np.argsort(ts, kind="stable")
    return pa.Table.from_arrays(
        [
            _transaction_ids(m),
            pa.array(people.customer_id[who][order]),
            _timestamps(ts[order]),
            pa.array(amount[order]),
            pa.array(currency[order], pa.string()),
            _labels(CHANNELS, channel[order]),
            _labels(CATEGORIES, category[order]),
            _labels(STATUSES, status[order]),
        ],
        schema=TRANSACTION_SCHEMA,
    )


def _add_dirt(rng: np.random.Generator, rows: pa.Table, dirt: Dirt) -> pa.Table:
    """Corrupt a few rows in place and re-deliver a few; the result stays sorted by ts."""
    m = rows.num_rows
    amount = rows.column("amount").to_numpy()
    amount = np.where(rng.random(m) < dirt.negative_amount, -amount, amount)
    amount = np.where(rng.random(m) < dirt.outlier_amount, np.round(amount * 100, 2), amount)
    missing = rng.random(m) < dirt.null_amount
    currency = rows.column("currency").to_numpy(zero_copy_only=False)
    bad_currency = rng.random(m) < dirt.unknown_currency
    currency = np.where(bad_currency, np.asarray(UNKNOWN_CURRENCIES)[rng.integers(0, 3, m)], currency)
    rows = rows.set_column(3, "amount", pa.array(amount, pa.float64(), mask=missing))
    rows = rows.set_column(4, "currency", pa.array(currency, pa.string()))
    # At-least-once delivery: exact copies of some rows arrive again, right next to the original.
    copies = rng.choice(m, round(dirt.duplicate * m), replace=False) if m else np.empty(0, np.int64)
    return rows.take(np.sort(np.concatenate([np.arange(m), copies])))


# --- helpers ------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _to_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _int_us(column: pa.ChunkedArray) -> np.ndarray:
    """Microseconds since the epoch of a timestamp column (nulls become the minimum int64)."""
    ints = pc.fill_null(column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()), np.iinfo(np.int64).min)
    return np.asarray(ints.to_numpy())


def _timestamps(us: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(us.astype(np.int64), pa.int64(), mask=mask).cast(pa.timestamp("us", tz="UTC"))


def _labels(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(index))


def _pick_rows(rng: np.random.Generator, probabilities: np.ndarray) -> np.ndarray:
    """One categorical draw per row of `probabilities` (rows sum to 1)."""
    cumulative = probabilities.cumsum(axis=1)
    return np.minimum(
        (rng.random(len(probabilities))[:, None] > cumulative).sum(axis=1), probabilities.shape[1] - 1
    )


def _transaction_ids(m: int) -> pa.Array:
    digits = pc.utf8_lpad(pa.array(np.arange(1, m + 1)).cast(pa.string()), 9, "0")
    return pc.binary_join_element_wise("T", digits, "")
