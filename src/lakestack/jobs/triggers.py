"""When a job's schedule or trigger is due: pure decisions the scheduler acts on.

Each decision names a *tick*, the instant that identifies the firing. The scheduler claims
(job, kind, tick) in the metastore before it starts the run, so a tick fires once even when two
schedulers look at the same moment or one restarts.

- **schedule** (Quartz cron): the latest fire time at or before now, if no run was started for
  it and it is not older than the job's last change. A scheduler that was down fires the
  missed tick once when it comes back (Quartz's "fire once now"), not every missed tick.
- **periodic** (every N hours, days or weeks): ticks counted from the job's last change.
- **table_update**: the tables' newest Delta versions against those the job last ran for
  (or, before its first triggered run, against the job's last change). ANY_UPDATED fires when
  one table has a new version, ALL_UPDATED when every one has. The tick is the newest commit
  time among the tables, so every scheduler derives the same tick from the same versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lakestack.jobs.cron import QuartzCron
from lakestack.jobs.settings import CronSchedule, PeriodicTrigger, TableUpdateTrigger

_UNIT = {"HOURS": timedelta(hours=1), "DAYS": timedelta(days=1), "WEEKS": timedelta(weeks=1)}


@dataclass(frozen=True)
class Due:
    """A firing to claim: its kind (`schedule`, `periodic`, `table_update`), tick and why."""

    kind: str
    tick: datetime
    detail: dict[str, Any]


@dataclass(frozen=True)
class TableVersion:
    """A table's newest Delta version and when it was committed."""

    version: int
    timestamp: datetime


def schedule_due(
    schedule: CronSchedule, now: datetime, changed_at: datetime, last_tick: datetime | None
) -> Due | None:
    """The schedule's tick to fire now, if any (`last_tick`: the newest one already fired)."""
    if schedule.pause_status == "PAUSED":
        return None
    tick = QuartzCron(schedule.quartz_cron_expression, schedule.timezone_id).previous(now)
    if tick is None or tick < changed_at or (last_tick is not None and tick <= last_tick):
        return None
    detail = {"quartz_cron_expression": schedule.quartz_cron_expression, "timezone_id": schedule.timezone_id}
    return Due("schedule", tick, detail)


def periodic_due(
    periodic: PeriodicTrigger, now: datetime, changed_at: datetime, last_tick: datetime | None
) -> Due | None:
    """The periodic trigger's latest tick, counted from the job's last change, if not fired yet."""
    interval = periodic.interval * _UNIT[periodic.unit]
    if now - changed_at < interval:
        return None
    tick = changed_at + ((now - changed_at) // interval) * interval
    if last_tick is not None and tick <= last_tick:
        return None
    return Due("periodic", tick, {"interval": periodic.interval, "unit": periodic.unit})


def table_update_due(
    trigger: TableUpdateTrigger,
    now: datetime,
    versions: dict[str, TableVersion],
    changed_at: datetime,
    last_versions: dict[str, int] | None,
    last_fired_at: datetime | None,
) -> Due | None:
    """Fire for new table versions, once writes have settled and runs are spaced as asked.

    `versions` holds every table of the trigger; `last_versions` what the last triggered run
    saw (None before the first: then a table counts as updated if committed after `changed_at`).
    """

    def updated(name: str) -> bool:
        if last_versions is None:
            return versions[name].timestamp > changed_at
        return versions[name].version > last_versions.get(name, -1)

    changed = [name for name in trigger.table_names if updated(name)]
    wanted = len(trigger.table_names) if trigger.condition == "ALL_UPDATED" else 1
    if len(changed) < wanted:
        return None
    newest = max(versions[name].timestamp for name in changed)
    if now - newest < timedelta(seconds=trigger.wait_after_last_change_seconds):
        return None
    if last_fired_at is not None and now - last_fired_at < timedelta(
        seconds=trigger.min_time_between_triggers_seconds
    ):
        return None
    detail = {
        "versions": {name: versions[name].version for name in trigger.table_names},
        "updated": changed,
    }
    return Due("table_update", max(v.timestamp for v in versions.values()), detail)
