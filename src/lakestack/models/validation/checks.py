"""The checks a validation runs, and what each one found.

- `MetadataRequirements`: format and metadata (signature, input example, description, required
  tags, a feature spec consistent with the feature tables it names).
- `Threshold`: an absolute bound on a metric of the candidate (`roc_auc >= 0.7`).
- `Comparison`: the candidate against the current champion on the same rows (a minimum
  absolute or relative improvement); with no champion, against a fixed `baseline` if given.
- `SliceThreshold`: a bound on a metric within the rows a slice expression selects
  (`accuracy >= 0.6 where region = 'north'`; `where region` alone: one slice per value).
- `CustomCheck`: a Python callable given the evaluation, returning pass/fail and a detail.

Each can be built from the short text the CLI and job task take: `roc_auc>=0.7`,
`roc_auc=0.01` (a minimum improvement), `roc_auc=1%` (relative),
`accuracy>=0.6 where region = 'north'`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lakestack.errors import InvalidParameter

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_BOUND = re.compile(r"\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>>=|<=|>|<)\s*(?P<value>[-+0-9.eE]+)\s*")
_CHANGE = re.compile(r"\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>[-+0-9.eE]+)\s*(?P<pct>%?)\s*")
_WHERE = re.compile(r"\s+where\s+", re.IGNORECASE)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidParameter(f"{what}: {text!r} is not a number.") from None
    if not math.isfinite(value):
        raise InvalidParameter(f"{what}: {text!r} is not a finite number.")
    return value


@dataclass(frozen=True)
class MetadataRequirements:
    """What the candidate's package and registry entry must carry (format and metadata checks)."""

    signature: bool = True
    input_example: bool = False
    description: bool = False
    tags: tuple[str, ...] = ()
    feature_spec: bool = True  # a spec it has must match the feature tables it names


@dataclass(frozen=True)
class Threshold:
    """`metric op value`: the candidate's metric must satisfy the bound."""

    metric: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise InvalidParameter(
                f"Threshold on {self.metric}: operator {self.op!r} is not one of >=, >, <=, <."
            )

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """`roc_auc>=0.7` -> Threshold("roc_auc", ">=", 0.7)."""
        match = _BOUND.fullmatch(text)
        if match is None:
            raise InvalidParameter(f"Invalid threshold {text!r}: write METRIC OP VALUE, e.g. roc_auc>=0.7.")
        return cls(match["metric"], match["op"], _number(match["value"], f"threshold {text!r}"))

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Comparison:
    """The candidate must beat the champion on `metric` by `min_absolute` and/or `min_relative`
    (a fraction: 0.01 = 1%). `greater_is_better` defaults from the metric (False for losses).
    Without a champion the comparison is skipped, or made against `baseline` when given."""

    metric: str
    min_absolute: float | None = None
    min_relative: float | None = None
    greater_is_better: bool | None = None
    baseline: float | None = None

    @classmethod
    def parse(cls, text: str, baseline: float | None = None) -> Comparison:
        """`roc_auc=0.01` (absolute) or `roc_auc=1%` (relative) -> a Comparison."""
        match = _CHANGE.fullmatch(text)
        if match is None:
            raise InvalidParameter(
                f"Invalid minimum improvement {text!r}: write METRIC=CHANGE (roc_auc=0.01) "
                "or METRIC=PERCENT% (roc_auc=1%)."
            )
        value = _number(match["value"], f"minimum improvement {text!r}")
        if match["pct"]:
            return cls(match["metric"], min_relative=value / 100, baseline=baseline)
        return cls(match["metric"], min_absolute=value, baseline=baseline)

    def __str__(self) -> str:
        parts = []
        if self.min_absolute is not None:
            parts.append(f"+{self.min_absolute:g}")
        if self.min_relative is not None:
            parts.append(f"+{self.min_relative:.2%}")
        return f"{self.metric} improves by {' and '.join(parts) or 'any amount (not worse)'}"


@dataclass(frozen=True)
class SliceThreshold:
    """A threshold on the rows `where` selects. `where` is one SQL expression over the data's
    columns (`region = 'north'`, `age >= 60 AND plan IN ('a', 'b')`); a bare column name
    (`region`) makes one slice per value. Slices with fewer than `min_rows` rows fail."""

    where: str
    threshold: Threshold
    min_rows: int = 1

    @classmethod
    def parse(cls, text: str) -> SliceThreshold:
        """`accuracy>=0.6 where region = 'north'` -> a SliceThreshold."""
        parts = _WHERE.split(text, maxsplit=1)
        if len(parts) != 2 or not parts[1].strip():
            raise InvalidParameter(
                f"Invalid slice threshold {text!r}: write METRIC OP VALUE where EXPRESSION, "
                'e.g. "accuracy>=0.6 where region = \'north\'" (or "... where region": one slice per value).'
            )
        return cls(parts[1].strip(), Threshold.parse(parts[0]))

    def __str__(self) -> str:
        return f"{self.threshold} where {self.where}"


@dataclass(frozen=True)
class CheckOutcome:
    """What a custom check returns (a bool, or a (bool, detail) pair, also work)."""

    passed: bool
    detail: str = ""
    value: float | None = None


@dataclass(frozen=True)
class CustomCheck:
    """A callable given the `Evaluation` (rows, predictions, metrics of candidate and champion)
    returning pass/fail: a bool, a (bool, detail) pair or a CheckOutcome. An exception fails it."""

    name: str
    fn: Callable[[Any], Any] = field(repr=False)

    @classmethod
    def of(cls, check: CustomCheck | Callable[[Any], Any]) -> CustomCheck:
        if isinstance(check, CustomCheck):
            return check
        if not callable(check):
            raise InvalidParameter(f"A custom check must be callable, not {type(check).__name__}.")
        return cls(getattr(check, "__name__", type(check).__name__), check)


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict. `kind`: metadata, threshold, comparison, slice or custom.
    `skipped` checks count as passed and say why in `detail`."""

    name: str
    kind: str
    passed: bool
    value: float | None = None
    threshold: str | None = None
    detail: str = ""
    skipped: bool = False


def outcome(value: Any) -> CheckOutcome:
    """Read what a custom check returned."""
    if isinstance(value, CheckOutcome):
        return value
    if isinstance(value, bool):
        return CheckOutcome(value)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bool):
        return CheckOutcome(value[0], str(value[1]))
    raise InvalidParameter(
        f"A custom check returned {value!r}: return a bool, a (bool, detail) pair or a CheckOutcome."
    )
