"""When schedules and triggers are due (pure decisions; the scheduler claims and starts runs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lakestack.jobs.settings import CronSchedule, PeriodicTrigger, TableUpdateTrigger
from lakestack.jobs.triggers import TableVersion, periodic_due, schedule_due, table_update_due

CHANGED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return CHANGED + timedelta(minutes=minutes)


def test_a_schedule_fires_its_latest_tick_once_and_never_before_the_job_changed() -> None:
    every_15 = CronSchedule(quartz_cron_expression="0 */15 * * * ?")
    assert schedule_due(every_15, at(14), CHANGED, None) is not None  # 10:00 itself is not before
    due = schedule_due(every_15, at(47), CHANGED, None)
    assert due is not None and due.tick == at(45)  # a scheduler that was down fires once
    assert schedule_due(every_15, at(50), CHANGED, at(45)) is None
    assert schedule_due(every_15, at(5), at(1), None) is None  # 10:00 came before the change
    paused = CronSchedule(quartz_cron_expression="0 */15 * * * ?", pause_status="PAUSED")
    assert schedule_due(paused, at(47), CHANGED, None) is None


def test_periodic_ticks_count_from_the_jobs_last_change() -> None:
    hourly = PeriodicTrigger(interval=1, unit="HOURS")
    assert periodic_due(hourly, at(59), CHANGED, None) is None
    due = periodic_due(hourly, at(150), CHANGED, None)
    assert due is not None and due.tick == at(120)
    assert periodic_due(hourly, at(170), CHANGED, at(120)) is None


def versions(**tables: tuple[int, float]) -> dict[str, TableVersion]:
    return {f"dev.s.{name}": TableVersion(v, at(minute)) for name, (v, minute) in tables.items()}


def test_table_updates_any_all_settle_and_spacing() -> None:
    any_of = TableUpdateTrigger(table_names=["dev.s.a", "dev.s.b"])
    # Before the first triggered run, what changed after the job changed counts.
    assert table_update_due(any_of, at(10), versions(a=(3, -5), b=(1, -9)), CHANGED, None, None) is None
    due = table_update_due(any_of, at(10), versions(a=(4, 5), b=(1, -9)), CHANGED, None, None)
    assert due is not None and due.detail == {
        "versions": {"dev.s.a": 4, "dev.s.b": 1},
        "updated": ["dev.s.a"],
    }
    assert due.tick == at(5)
    seen = {"dev.s.a": 4, "dev.s.b": 1}
    assert table_update_due(any_of, at(20), versions(a=(4, 5), b=(1, -9)), CHANGED, seen, at(10)) is None

    all_of = TableUpdateTrigger(table_names=["dev.s.a", "dev.s.b"], condition="ALL_UPDATED")
    assert table_update_due(all_of, at(20), versions(a=(5, 15), b=(1, -9)), CHANGED, seen, at(10)) is None
    assert table_update_due(all_of, at(20), versions(a=(5, 15), b=(2, 16)), CHANGED, seen, at(10))

    settle = TableUpdateTrigger(table_names=["dev.s.a"], wait_after_last_change_seconds=120)
    assert table_update_due(settle, at(6), versions(a=(5, 5)), CHANGED, None, None) is None
    assert table_update_due(settle, at(7), versions(a=(5, 5)), CHANGED, None, None) is not None

    spaced = TableUpdateTrigger(table_names=["dev.s.a"], min_time_between_triggers_seconds=600)
    assert table_update_due(spaced, at(15), versions(a=(6, 14)), CHANGED, {"dev.s.a": 5}, at(10)) is None
    assert table_update_due(spaced, at(20), versions(a=(6, 14)), CHANGED, {"dev.s.a": 5}, at(10))
