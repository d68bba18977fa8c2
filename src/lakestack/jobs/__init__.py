"""Jobs: multi-task DAGs with parameters, task values, retries, schedules and triggers.

Part 1 is the job spec (`JobSpec`, written in YAML or Python); runs, executors and the
scheduler build on it.
"""

from lakestack.jobs.references import Reference, parse_reference, references
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
