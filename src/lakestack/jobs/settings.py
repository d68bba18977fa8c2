"""Job-level settings of a job spec: parameters, queueing, schedule, trigger, notifications, run_as.

Field names follow the Databricks Jobs API 2.1, so a Databricks job's YAML mostly reads as is.
Shared value types (`Text`, identifiers, relative paths) live here too; `spec.py` builds tasks
and jobs from them.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from lakestack.catalog.names import Name
from lakestack.errors import InvalidName
from lakestack.jobs.cron import validate_quartz_cron
from lakestack.jobs.references import PARAMETER_NAME, TASK_KEY
from lakestack.jobs.yaml import raise_problems

PauseStatus = Literal["PAUSED", "UNPAUSED"]
Compute = Literal["local", "ray"]

#: A job name: letters, digits, spaces, `_`, `-` and `.`; starts with a letter or digit, does not
#: end with a space, at most 128 characters. No `/` or `\`: a name never becomes a path.
JOB_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _.-]{0,126}[A-Za-z0-9_.-])?")
_DESTINATION_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+")


class Spec(BaseModel):
    """Base of every spec model: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- value types ------------------------------------------------------------------------


def _text(value: Any) -> Any:
    # YAML turns `default: 10` into an int; a parameter is text, so take the number's text.
    if isinstance(value, bool):
        raise ValueError(
            f"expected text, got the boolean {str(value).lower()}: quote it, since YAML reads "
            "unquoted true/false/yes/no/on/off as booleans"
        )
    if isinstance(value, int | float):
        return str(value)
    return value


def _job_name(value: str) -> str:
    if not JOB_NAME.fullmatch(value):
        raise ValueError(
            f"invalid job name {value!r}: use letters, digits, spaces, '_', '-' and '.', starting "
            "with a letter or digit (at most 128 characters), e.g. 'churn training'"
        )
    return value


def _task_key(value: str) -> str:
    if not TASK_KEY.fullmatch(value):
        raise ValueError(
            f"invalid task_key {value!r}: use letters, digits, '_' and '-', not starting with '-' "
            "(at most 100 characters), e.g. 'train_model'"
        )
    return value


def _parameter_name(value: str) -> str:
    if not PARAMETER_NAME.fullmatch(value):
        raise ValueError(
            f"invalid parameter name {value!r}: use letters, digits and '_', starting with a letter "
            "or '_' (at most 128 characters), e.g. 'catalog'"
        )
    return value


def _email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _table_name(value: str) -> str:
    try:
        return str(Name.parse(value, 3))
    except InvalidName as exc:
        raise ValueError(exc.message) from None


def relative_path(value: str, suffix: str, what: str, example: str) -> str:
    """Check that `value` is a `suffix` file inside the job's folder; return it normalised."""
    if not value or "\\" in value or value.startswith(("/", "~")) or re.match(r"[A-Za-z]:", value):
        raise ValueError(f"{what} must be a path relative to the job's folder, e.g. '{example}'")
    path = PurePosixPath(value)
    if ".." in path.parts:
        raise ValueError(f"{what} must stay inside the job's folder: no '..' in {value!r}")
    if path.suffix != suffix:
        raise ValueError(f"{what} must name a {suffix} file, e.g. '{example}'; got {value!r}")
    return str(path)


#: A string setting; YAML numbers are taken as their text, booleans are refused.
Text = Annotated[str, BeforeValidator(_text)]
JobName = Annotated[str, AfterValidator(_job_name)]
TaskKey = Annotated[str, AfterValidator(_task_key)]
ParameterName = Annotated[str, AfterValidator(_parameter_name)]
Email = Annotated[str, AfterValidator(_email)]
TableName = Annotated[str, AfterValidator(_table_name)]
TagKey = Annotated[str, Field(min_length=1, max_length=127)]
TagValue = Annotated[Text, Field(max_length=255)]


def exactly_one(model: BaseModel, fields: tuple[str, ...], what: str) -> None:
    """Raise unless exactly one of `fields` is set: none names them all, a second one is pointed at."""
    present = [name for name in fields if getattr(model, name) is not None]
    if not present:
        raise ValueError(f"{what} needs one of {', '.join(fields)}")
    raise_problems(
        type(model).__name__,
        (
            ((name,), f"{what} takes only one of {', '.join(fields)}; it already has {present[0]}", None)
            for name in present[1:]
        ),
    )


# --- job-level settings ------------------------------------------------------------------


class JobParameter(Spec):
    """A job parameter: tasks read it as `{{job.parameters.<name>}}`; a run may override the default.

    A default may use run values such as `{{job.start_time.iso_date}}`.
    """

    name: ParameterName
    default: Text


class QueueSettings(Spec):
    """`enabled` (default): a run started while `max_concurrent_runs` are active waits in a queue;
    disabled: it is skipped."""

    enabled: bool = True


class CronSchedule(Spec):
    """Run on a Quartz cron schedule (see `lakestack.jobs.cron`) in a time zone."""

    quartz_cron_expression: Annotated[str, AfterValidator(validate_quartz_cron)]
    timezone_id: str = "UTC"
    pause_status: PauseStatus = "UNPAUSED"

    @model_validator(mode="after")
    def _known_timezone(self) -> Self:
        try:
            zoneinfo.ZoneInfo(self.timezone_id)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            close = difflib.get_close_matches(self.timezone_id, zoneinfo.available_timezones(), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "use an IANA name such as 'Europe/Paris'"
            raise_problems(
                "CronSchedule",
                [(("timezone_id",), f"unknown time zone '{self.timezone_id}'; {hint}", self.timezone_id)],
            )
        return self


class TableUpdateTrigger(Spec):
    """Run when the given Delta tables get new versions.

    `condition`: ANY_UPDATED runs when any table changed, ALL_UPDATED when every table changed
    since the last triggered run. `min_time_between_triggers_seconds` spaces runs out;
    `wait_after_last_change_seconds` waits for writes to settle before starting.
    """

    table_names: Annotated[list[TableName], Field(min_length=1)]
    condition: Literal["ANY_UPDATED", "ALL_UPDATED"] = "ANY_UPDATED"
    min_time_between_triggers_seconds: Annotated[int, Field(ge=0)] = 0
    wait_after_last_change_seconds: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _unique_tables(self) -> Self:
        seen: set[str] = set()
        duplicates = []
        for index, name in enumerate(self.table_names):
            if name in seen:
                duplicates.append((("table_names", index), f"table '{name}' is listed twice", name))
            seen.add(name)
        raise_problems("TableUpdateTrigger", duplicates)
        return self


class PeriodicTrigger(Spec):
    """Run every `interval` `unit`s."""

    interval: Annotated[int, Field(ge=1)]
    unit: Literal["HOURS", "DAYS", "WEEKS"]


class TriggerSettings(Spec):
    """What, besides the schedule, starts a run: exactly one of `table_update` and `periodic`."""

    pause_status: PauseStatus = "UNPAUSED"
    table_update: TableUpdateTrigger | None = None
    periodic: PeriodicTrigger | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        exactly_one(self, ("table_update", "periodic"), "a trigger")
        return self


class EmailNotifications(Spec):
    """Addresses to e-mail when a run starts, succeeds or fails."""

    on_start: list[Email] = Field(default_factory=list)
    on_success: list[Email] = Field(default_factory=list)
    on_failure: list[Email] = Field(default_factory=list)


class Webhook(Spec):
    """A webhook to call: `id` names a notification destination configured in the workspace
    (it holds the URL and the signing secret, so neither is in the job file), or `url` is an
    inline http(s) URL. Exactly one of them."""

    id: str | None = None
    url: str | None = None

    @model_validator(mode="after")
    def _destination(self) -> Self:
        exactly_one(self, ("id", "url"), "a webhook")
        if self.id is not None and not _DESTINATION_ID.fullmatch(self.id):
            raise_problems(
                "Webhook",
                [
                    (
                        ("id",),
                        f"invalid destination id {self.id!r}: use letters, digits, '_', '-', '.'",
                        self.id,
                    )
                ],
            )
        if self.url is not None:
            # Never echo the URL: it may carry a token.
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                problem = "a webhook url must be an http:// or https:// URL with a host"
            elif parts.username is not None or parts.password is not None:
                problem = "a webhook url must not hold a user or password: use a destination id"
            else:
                return self
            raise_problems("Webhook", [(("url",), problem, None)])
        return self


class WebhookNotifications(Spec):
    """Webhooks to call when a run starts, succeeds or fails."""

    on_start: list[Webhook] = Field(default_factory=list)
    on_success: list[Webhook] = Field(default_factory=list)
    on_failure: list[Webhook] = Field(default_factory=list)


class RunAs(Spec):
    """The principal a run acts as: exactly one of `user_name` and `service_principal_name`.
    Without `run_as`, a job runs as whoever created it."""

    user_name: Annotated[str, Field(min_length=1)] | None = None
    service_principal_name: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_principal(self) -> Self:
        exactly_one(self, ("user_name", "service_principal_name"), "run_as")
        return self

    @property
    def principal(self) -> str:
        """The user or service principal named."""
        return self.user_name or self.service_principal_name or ""
