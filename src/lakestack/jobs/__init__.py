"""Jobs: multi-task DAGs with parameters, task values, retries, schedules and triggers.

- `spec`: the job spec (`JobSpec`, written in YAML or Python), validated with YAML line numbers;
- `service`: `ws.jobs` (create, run_now, runs, get_run, cancel, repair, logs), checked by grants;
- `runner`: drives one run (run_if, retries, timeouts, references, cancel, repair, heartbeats);
- `executors`: where an attempt runs (`local`: a process group per attempt; `ray`: the same,
  in a Ray task on a cluster);
- `entrypoint`, `tasks`, `notebook`, `task_values`: what runs inside a task's process;
- `cron`, `triggers`, `scheduler`: when runs start, and recovering runs whose runner died.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager (it is small): the function `references` must shadow the submodule of the same name.
from lakestack.jobs.references import Reference, parse_reference, references

if TYPE_CHECKING:
    from lakestack.jobs.settings import (
        CronSchedule,
        EmailNotifications,
        JobParameter,
        PeriodicTrigger,
        QueueSettings,
        RunAs,
        TableUpdateTrigger,
        TriggerSettings,
        Webhook,
        WebhookNotifications,
    )
    from lakestack.jobs.spec import (
        ConditionTask,
        JobSpec,
        NotebookTask,
        PythonTask,
        RunJobTask,
        SqlTask,
        Task,
        TaskDependency,
    )

__all__ = [
    "ConditionTask",
    "CronSchedule",
    "EmailNotifications",
    "JobParameter",
    "JobSpec",
    "NotebookTask",
    "PeriodicTrigger",
    "PythonTask",
    "QueueSettings",
    "Reference",
    "RunAs",
    "RunJobTask",
    "SqlTask",
    "TableUpdateTrigger",
    "Task",
    "TaskDependency",
    "TriggerSettings",
    "Webhook",
    "WebhookNotifications",
    "parse_reference",
    "references",
]

# Imported on first use: a task process imports `lakestack.jobs.entrypoint` and
# `lakestack.jobs.task_values`, and must not pay for pydantic models it never builds.
_LAZY = {
    "CronSchedule": "lakestack.jobs.settings",
    "EmailNotifications": "lakestack.jobs.settings",
    "JobParameter": "lakestack.jobs.settings",
    "PeriodicTrigger": "lakestack.jobs.settings",
    "QueueSettings": "lakestack.jobs.settings",
    "RunAs": "lakestack.jobs.settings",
    "TableUpdateTrigger": "lakestack.jobs.settings",
    "TriggerSettings": "lakestack.jobs.settings",
    "Webhook": "lakestack.jobs.settings",
    "WebhookNotifications": "lakestack.jobs.settings",
    "ConditionTask": "lakestack.jobs.spec",
    "JobSpec": "lakestack.jobs.spec",
    "NotebookTask": "lakestack.jobs.spec",
    "PythonTask": "lakestack.jobs.spec",
    "RunJobTask": "lakestack.jobs.spec",
    "SqlTask": "lakestack.jobs.spec",
    "Task": "lakestack.jobs.spec",
    "TaskDependency": "lakestack.jobs.spec",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lakestack.jobs' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
