"""Quartz cron expressions, as Databricks job schedules write them.

`seconds minutes hours day-of-month month day-of-week [year]`, e.g. `0 30 2 * * ?` (02:30:00
every day). Each field is `*`, a value, a range `a-b`, a step `*/n`, `a/n` or `a-b/n`, or a
comma-separated list of those. Months may be `JAN`-`DEC`, days of week `SUN`-`SAT` (1 = Sunday).
Exactly one of day-of-month and day-of-week is `?` ("no specific value"). Day-of-month also takes
`L` (last day), `L-n`, `nW` (nearest weekday) and `LW`; day-of-week takes `nL` (last such day
of the month) and `n#k` (the k-th such day).

`validate_quartz_cron` checks an expression; `QuartzCron` says when it fires, on the wall
clock of a time zone. Around daylight-saving changes a job still fires once a day: a wall time
the clocks skip fires as if they had not moved (02:30 fires at 03:30 new time), and a wall
time that happens twice fires on its first occurrence.
"""

from __future__ import annotations

import calendar
import re
import zoneinfo
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

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


# --- when an expression fires ------------------------------------------------------------

#: How far `previous` and `next` search (a Feb-29 or year-bounded expression may fire rarely).
_SEARCH_DAYS = 366 * 8


class QuartzCron:
    """A valid Quartz expression in a time zone: `previous(at)` and `next(after)` fire times."""

    def __init__(self, expression: str, timezone_id: str = "UTC") -> None:
        fields = validate_quartz_cron(expression).split()
        self.expression = " ".join(fields)
        self.zone = zoneinfo.ZoneInfo(timezone_id)
        self._seconds = _values(fields[0], *_FIELDS[0][1:])
        self._minutes = _values(fields[1], *_FIELDS[1][1:])
        self._hours = _values(fields[2], *_FIELDS[2][1:])
        self._months = _values(fields[4], *_FIELDS[4][1:])
        self._years = _values(fields[6], *_FIELDS[6][1:]) if len(fields) == 7 else None
        self._day: Callable[[date], bool] = (
            _day_of_week(fields[5]) if fields[3] == "?" else _day_of_month(fields[3])
        )
        self._times = sorted((h, m, s) for h in self._hours for m in self._minutes for s in self._seconds)

    def previous(self, at: datetime) -> datetime | None:
        """The latest fire time at or before `at` (UTC), or None within the search window."""
        local = at.astimezone(self.zone).replace(tzinfo=None)
        for day in self._days(local.date(), -1):
            limit = (local.hour, local.minute, local.second) if day == local.date() else (23, 59, 59)
            times = [t for t in self._times if t <= limit]
            for h, m, s in reversed(times):
                fired = self._instant(day, h, m, s)
                if fired <= at:
                    return fired
        return None

    def next(self, after: datetime) -> datetime | None:
        """The earliest fire time strictly after `after` (UTC), or None within the search window."""
        local = after.astimezone(self.zone).replace(tzinfo=None)
        for day in self._days(local.date(), 1):
            floor = (local.hour, local.minute, local.second) if day == local.date() else (-1, -1, -1)
            for h, m, s in (t for t in self._times if t > floor):
                fired = self._instant(day, h, m, s)
                if fired > after:
                    return fired
        return None

    def _days(self, start: date, step: int) -> Iterator[date]:
        day = start
        for _ in range(_SEARCH_DAYS):
            if (
                day.month in self._months
                and (self._years is None or day.year in self._years)
                and self._day(day)
            ):
                yield day
            day += timedelta(days=step)

    def _instant(self, day: date, hour: int, minute: int, second: int) -> datetime:
        wall = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=self.zone)
        # fold=0 takes the first of a repeated wall time; a skipped one maps past the gap.
        return wall.astimezone(UTC)


def _values(text: str, low: int, high: int, names: list[str] | None) -> frozenset[int]:
    """The numbers a plain field (no L/W/#) allows."""
    if text in ("*", "?"):
        return frozenset(range(low, high + 1))
    found: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        assert match is not None  # validated
        span, step = match.group("range"), int(match.group("step") or 1)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (_value(v, "", low, high, names) for v in span.split("-"))
        else:
            first = _value(span, "", low, high, names)
            last = high if match.group("step") else first
        if first <= last:
            found.update(range(first, last + 1, step))
        else:  # a range that wraps around, such as FRI-MON or 22-2
            found.update([*range(first, high + 1), *range(low, last + 1)][::step])
    return frozenset(found)


def _weekday(quartz_day: int) -> int:
    """Python's weekday (Monday 0) of a Quartz day of week (Sunday 1)."""
    return (quartz_day - 2) % 7


def _nearest_weekday(year: int, month: int, day: int) -> int:
    last = calendar.monthrange(year, month)[1]
    day = min(day, last)
    weekday = date(year, month, day).weekday()
    if weekday == 5:  # Saturday: Friday, unless that leaves the month
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday: Monday, unless that leaves the month
        return day + 1 if day < last else day - 2
    return day


def _day_of_month(text: str) -> Callable[[date], bool]:
    plain = [item for item in text.split(",") if not _DOM_SPECIAL.fullmatch(item)]
    special = [item for item in text.split(",") if _DOM_SPECIAL.fullmatch(item)]
    days = _values(",".join(plain), 1, 31, None) if plain else frozenset()

    def matches(day: date) -> bool:
        if day.day in days:
            return True
        last = calendar.monthrange(day.year, day.month)[1]
        for item in special:
            if item == "L":
                wanted = last
            elif item == "LW":
                wanted = _nearest_weekday(day.year, day.month, last)
            elif item.startswith("L-"):
                wanted = last - int(item[2:])
            else:  # nW
                wanted = _nearest_weekday(day.year, day.month, int(item[:-1]))
            if day.day == wanted:
                return True
        return False

    return matches


def _day_of_week(text: str) -> Callable[[date], bool]:
    plain: list[str] = []
    special: list[tuple[int, str]] = []  # (python weekday, "L" or "#k")
    for item in text.split(","):
        match = _DOW_SPECIAL.fullmatch(item)
        if match is None:
            plain.append(item)
        elif item == "L":
            plain.append("7")  # alone, L is the last day of the week: Saturday
        else:
            quartz = _value(match.group(1), "", 1, 7, _DAYS)
            special.append((_weekday(quartz), item[len(match.group(1)) :]))
    weekdays = {_weekday(d) for d in _values(",".join(plain), 1, 7, _DAYS)} if plain else set()

    def matches(day: date) -> bool:
        weekday = day.weekday()
        if weekday in weekdays:
            return True
        last = calendar.monthrange(day.year, day.month)[1]
        for wanted, rule in special:
            if weekday != wanted:
                continue
            if rule == "L" and day.day + 7 > last:
                return True
            if rule.startswith("#") and (day.day - 1) // 7 + 1 == int(rule[1:]):
                return True
        return False

    return matches
