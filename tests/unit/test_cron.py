"""When Quartz schedules fire: checked against croniter where both speak, and by hand for the
Quartz-only forms (seconds, L, W, #, years, time zones, daylight-saving changes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter

from lakestack.jobs.cron import QuartzCron


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# (quartz, the same schedule in croniter's 5 fields: minute hour day month weekday with 0 = Sunday)
SAME_SCHEDULE = [
    ("0 30 2 * * ?", "30 2 * * *"),
    ("0 */15 * * * ?", "*/15 * * * *"),
    ("0 0 9-17/2 ? * MON-FRI", "0 9-17/2 * * 1-5"),
    ("0 5,35 8 1,15 * ?", "5,35 8 1,15 * *"),
    ("0 0 0 ? JAN,JUL 1", "0 0 * 1,7 0"),
    ("0 45 23 L * ?", "45 23 L * *"),
    ("0 10 4 ? * 6#3", "10 4 * * 5#3"),
]


@pytest.mark.parametrize(("quartz", "five"), SAME_SCHEDULE)
def test_next_fire_times_match_croniter(quartz: str, five: str) -> None:
    schedule = QuartzCron(quartz)
    start = utc(2026, 1, 1, 0, 0, 1)
    reference = croniter(five, start)
    at = start
    for _ in range(40):
        expected = reference.get_next(datetime)
        at_next = schedule.next(at)
        assert at_next == expected, (quartz, at)
        assert schedule.previous(at_next) == at_next  # a fire time is its own latest fire time
        if at != start:  # nothing fires between two fire times
            assert schedule.previous(at_next - timedelta(seconds=1)) == at
        at = at_next


def test_seconds_and_the_latest_due_tick() -> None:
    schedule = QuartzCron("*/20 * * * * ?")
    assert schedule.previous(utc(2026, 11, 23, 15, 0, 59)) == utc(2026, 11, 23, 15, 0, 40)
    assert schedule.next(utc(2026, 11, 23, 15, 0, 40)) == utc(2026, 11, 23, 15, 1, 0)


def test_quartz_only_day_rules() -> None:
    after = utc(2026, 11, 23, 12)  # a Monday
    assert QuartzCron("0 0 9 LW * ?").next(after) == utc(2026, 11, 30, 9)  # last weekday
    assert QuartzCron("0 0 9 L-2 * ?").next(after) == utc(2026, 11, 28, 9)
    # 15W: the 15th of November 2026 is a Sunday -> Monday 16th; of December a Tuesday.
    assert QuartzCron("0 0 9 15W * ?").next(utc(2026, 11, 1)) == utc(2026, 11, 16, 9)
    assert QuartzCron("0 0 9 15W * ?").next(utc(2026, 11, 17)) == utc(2026, 12, 15, 9)
    # 1W on a Saturday does not leave the month: Monday the 3rd (August 2026 starts on a Saturday).
    assert QuartzCron("0 0 9 1W * ?").next(utc(2026, 7, 31)) == utc(2026, 8, 3, 9)
    assert QuartzCron("0 0 9 ? * 2L").next(after) == utc(2026, 11, 30, 9)  # last Monday
    assert QuartzCron("0 0 9 ? * L").next(after) == utc(2026, 11, 28, 9)  # L alone: Saturday
    assert QuartzCron("0 0 22-2 * * ?").next(utc(2026, 3, 28, 3)) == utc(2026, 3, 28, 22)
    assert QuartzCron("0 0 0 29 2 ? 2028").next(after) == utc(2028, 2, 29)
    assert QuartzCron("0 0 0 1 1 ? 2020").next(after) is None  # only in the past


def test_time_zone_and_daylight_saving_changes() -> None:
    paris = QuartzCron("0 30 2 * * ?", "Europe/Paris")
    assert paris.next(utc(2026, 11, 23, 12)) == utc(2026, 11, 24, 1, 30)  # CET: UTC+1
    assert paris.next(utc(2026, 7, 1, 12)) == utc(2026, 7, 2, 0, 30)  # CEST: UTC+2
    # 2026-03-29: 02:30 does not exist in Paris; the job still runs once that day.
    fired = paris.next(utc(2026, 3, 28, 12))
    assert fired == utc(2026, 3, 29, 1, 30)
    assert paris.next(fired) == utc(2026, 3, 30, 0, 30)
    # 2026-10-25: 02:30 happens twice; it fires once, the first time.
    fired = paris.next(utc(2026, 10, 24, 12))
    assert fired == utc(2026, 10, 25, 0, 30)
    assert paris.next(fired) == utc(2026, 10, 26, 1, 30)
