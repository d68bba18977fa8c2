"""Quartz cron expressions, as Databricks job schedules write them.

`seconds minutes hours day-of-month month day-of-week [year]`, e.g. `0 30 2 * * ?` (02:30:00
every day). Each field is `*`, a value, a range `a-b`, a step `*/n`, `a/n` or `a-b/n`, or a
comma-separated list of those. Months may be `JAN`-`DEC`, days of week `SUN`-`SAT` (1 = Sunday).
Exactly one of day-of-month and day-of-week is `?` ("no specific value"). Day-of-month also takes
`L` (last day), `L-n`, `nW` (nearest weekday) and `LW`; day-of-week takes `nL` (last such day
of the month) and `n#k` (the k-th such day).

This module only checks an expression; the scheduler decides when it fires.
"""

from __future__ import annotations

import re

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# name, lowest, highest, names for 1..n (or None)
_FIELDS: list[tuple[str, int, int, list[str] | None]] = [
    ("seconds", 0, 59, None),
    ("minutes", 0, 59, None),
    ("hours", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 1, 7, _DAYS),
    ("year", 1970, 2099, None),
]
_ITEM = re.compile(r"(?P<range>\*|[A-Z0-9]+(?:-[A-Z0-9]+)?)(?:/(?P<step>[0-9]+))?")
_DOM_SPECIAL = re.compile(r"L|LW|L-([0-9]+)|([0-9]+)W")
_DOW_SPECIAL = re.compile(r"([1-7]|[A-Z]{3})(?:L|#([1-5]))|L")
_EXAMPLE = "e.g. '0 30 2 * * ?' for 02:30 every day"


def validate_quartz_cron(expression: str) -> str:
    """Return the expression with single spaces and upper-case names, or raise ValueError saying why."""
    fields = expression.upper().split()
    if len(fields) not in (6, 7):
        raise ValueError(
            f"a Quartz cron expression has 6 or 7 fields (seconds minutes hours day-of-month month "
            f"day-of-week [year]), got {len(fields)}; {_EXAMPLE}"
        )
    for text, (name, low, high, names) in zip(fields, _FIELDS, strict=False):
        _check_field(text, name, low, high, names)
    day_of_month, day_of_week = fields[3], fields[5]
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ValueError(
            "exactly one of day-of-month (field 4) and day-of-week (field 6) must be '?', "
            f"got '{day_of_month}' and '{day_of_week}'; {_EXAMPLE}"
        )
    return " ".join(fields)


def _check_field(text: str, name: str, low: int, high: int, names: list[str] | None) -> None:
    if text == "?":
        if name not in ("day-of-month", "day-of-week"):
            raise ValueError(f"'?' is only allowed in day-of-month and day-of-week, not in {name}")
        return
    for item in text.split(","):
        if name == "day-of-month" and _DOM_SPECIAL.fullmatch(item):
            for number in re.findall(r"[0-9]+", item):
                _value(
                    number, name, 0 if item.startswith("L-") else low, 30 if item.startswith("L-") else high
                )
            continue
        if name == "day-of-week" and (special := _DOW_SPECIAL.fullmatch(item)):
            if special.group(1):
                _value(special.group(1), name, low, high, names)
            continue
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"{name} field '{text}' is not valid: use *, a value, a-b, */n or a list")
        if match.group("range") != "*":
            for value in match.group("range").split("-"):
                _value(value, name, low, high, names)
        step = match.group("step")
        if step is not None and not 1 <= int(step) <= high:
            raise ValueError(f"{name} step '/{step}' must be between 1 and {high}")


def _value(text: str, name: str, low: int, high: int, names: list[str] | None = None) -> int:
    if names and text in names:
        return names.index(text) + 1
    if not text.isdigit() or not low <= int(text) <= high:
        allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
        raise ValueError(f"{name} value '{text}' is out of range ({allowed})")
    return int(text)
