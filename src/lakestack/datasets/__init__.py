"""Synthetic, seeded data sets for demos, tutorials, tests and benchmarks (no I/O, no downloads)."""

from lakestack.datasets.transactions import (
    CURRENCIES,
    UNKNOWN_CURRENCIES,
    Dirt,
    RetailData,
    churn_labels,
    make_retail,
)

__all__ = ["CURRENCIES", "UNKNOWN_CURRENCIES", "Dirt", "RetailData", "churn_labels", "make_retail"]
