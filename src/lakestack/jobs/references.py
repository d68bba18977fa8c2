"""Dynamic value references in task settings: `{{job.parameters.env}}`, `{{tasks.train.values.auc}}`.

The syntax is Databricks': a reference is written inside double braces (spaces inside the
braces are allowed) in any string setting of a task, and the runner replaces it just before the
task starts. The job spec only checks that each reference is one of:

    job.id  job.name  job.run_id  job.repair_count  job.trigger.type
    job.start_time  job.start_time.<iso_date|iso_datetime|timestamp_ms|year|month|day|hour|
                                    minute|second|day_of_week|is_weekday>
    job.parameters.<parameter name>            a parameter the job declares
    task.name  task.run_id  task.execution_count   the task being run
    tasks.<task_key>.values.<key>              a task value set by an upstream task
    tasks.<task_key>.run_id  tasks.<task_key>.result_state   of an upstream task

There is no escape: text that must keep literal `{{...}}` cannot go in a task setting.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

#: `{{ ... }}` with the reference inside, surrounding spaces trimmed.
REFERENCE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")

#: A task key: letters, digits, `_` and `-`, not starting with `-`, at most 100 characters.
TASK_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,99}")
#: A job parameter name: a Python-style identifier, at most 128 characters.
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: A task value key, as written after `.values.`.
VALUE_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")

JOB_FIELDS = ("id", "name", "run_id", "repair_count", "trigger.type", "start_time")
START_TIME_FIELDS = (
    "iso_date",
    "iso_datetime",
    "timestamp_ms",
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "day_of_week",
    "is_weekday",
)
TASK_FIELDS = ("name", "run_id", "execution_count")
UPSTREAM_FIELDS = ("run_id", "result_state")

ReferenceKind = Literal["job", "job_parameter", "task", "task_value", "upstream_task"]

_ALLOWED = (
    "job.parameters.<name>, job.run_id, job.start_time[.iso_date|.iso_datetime|.timestamp_ms|...], "
    "job.id, job.name, job.repair_count, job.trigger.type, task.name, task.run_id, "
    "task.execution_count, tasks.<task_key>.values.<key>, tasks.<task_key>.run_id|result_state"
)


@dataclass(frozen=True)
class Reference:
    """A checked reference.

    `kind` says what it reads: `job` (a run attribute: `name` is e.g. `run_id` or
    `start_time.iso_date`), `job_parameter` (`name` is the parameter), `task` (an attribute of the
    task being run), `task_value` (`name` is the value key set by `task_key`) or `upstream_task`
    (`name` is `run_id` or `result_state` of `task_key`).
    """

    text: str
    kind: ReferenceKind
    name: str
    task_key: str | None = None

    @property
    def braced(self) -> str:
        """The reference as written in a setting: `{{job.run_id}}`."""
        return "{{" + self.text + "}}"


def references(text: str) -> list[str]:
    """The references in `text`, in order of first appearance, without braces or duplicates.

    `references("run {{ job.run_id }} of {{job.parameters.env}}")` is
    `["job.run_id", "job.parameters.env"]`. Nothing is checked; see `parse_reference`.
    """
    return list(dict.fromkeys(match.group(1) for match in REFERENCE.finditer(text)))


def parse_reference(text: str) -> Reference:
    """Check one reference (without braces) and say what it reads; ValueError names the allowed forms."""
    parts = text.split(".")
    root, rest = parts[0], parts[1:]
    if root == "job":
        if len(rest) == 2 and rest[0] == "parameters":
            if not PARAMETER_NAME.fullmatch(rest[1]):
                raise ValueError(f"'{{{{{text}}}}}' does not name a valid job parameter")
            return Reference(text, "job_parameter", rest[1])
        field = ".".join(rest)
        if field in JOB_FIELDS or (
            len(rest) == 2 and rest[0] == "start_time" and rest[1] in START_TIME_FIELDS
        ):
            return Reference(text, "job", field)
    elif root == "task":
        if len(rest) == 1 and rest[0] in TASK_FIELDS:
            return Reference(text, "task", rest[0])
    elif root == "tasks" and len(rest) >= 2 and TASK_KEY.fullmatch(rest[0]):
        if len(rest) == 3 and rest[1] == "values" and VALUE_KEY.fullmatch(rest[2]):
            return Reference(text, "task_value", rest[2], rest[0])
        if len(rest) == 2 and rest[1] in UPSTREAM_FIELDS:
            return Reference(text, "upstream_task", rest[1], rest[0])
    raise ValueError(f"unknown reference '{{{{{text}}}}}'; use one of {_ALLOWED}")


def substitute(text: str, lookup: Callable[[Reference], Any], keep_type: bool = False) -> Any:
    """Replace every reference in `text` with what `lookup` returns for it.

    Values that are not text are written as JSON. With `keep_type`, a setting that is exactly
    one reference becomes the value itself (a task value 0.93 stays a float for a function).
    """
    whole = REFERENCE.fullmatch(text)
    if keep_type and whole is not None:
        return lookup(parse_reference(whole.group(1)))

    def one(match: re.Match[str]) -> str:
        value = lookup(parse_reference(match.group(1)))
        return value if isinstance(value, str) else json.dumps(value)

    return REFERENCE.sub(one, text)
