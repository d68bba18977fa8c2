"""Job specs: the tasks a job runs, in which order, when, and who hears about it.

Shaped like Databricks jobs (field names from the Jobs API 2.1), written in YAML or in Python:

```yaml
name: churn training
parameters:
  - {name: catalog, default: dev}
schedule: {quartz_cron_expression: "0 0 2 * * ?", timezone_id: Europe/Paris}
tasks:
  - task_key: refresh_features
    python_task:
      function: churn.features:refresh
      parameters: {catalog: "{{job.parameters.catalog}}"}
  - task_key: train
    depends_on: [{task_key: refresh_features}]
    max_retries: 2
    python_task: {function: churn.train:main}
```

```python
train = Task(task_key="train", python_task=PythonTask(function="churn.train:main"))
JobSpec(name="churn training", tasks=[train])
JobSpec.from_yaml("jobs/train.yml")     # InvalidJobSpec lists every problem as file:line:column
```

A valid spec has unique task keys, dependencies on tasks of the job, no dependency cycles,
`outcome` only on dependencies on condition tasks, and dynamic references (`{{...}}`, see
`lakestack.jobs.references`) that name declared parameters and upstream tasks. Paths
(scripts, notebooks, SQL files) are relative to the job's folder: the folder of its YAML file.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, JsonValue, field_validator, model_validator

from lakestack.errors import InvalidJobSpec
from lakestack.jobs.references import parse_reference, references
from lakestack.jobs.settings import (
    Compute,
    CronSchedule,
    EmailNotifications,
    JobName,
    JobParameter,
    QueueSettings,
    RunAs,
    Spec,
    TagKey,
    TagValue,
    TaskKey,
    Text,
    TriggerSettings,
    WebhookNotifications,
    exactly_one,
    relative_path,
)
from lakestack.jobs.yaml import Loc, dump_yaml, load_model, raise_problems

RunIf = Literal[
    "ALL_SUCCESS", "AT_LEAST_ONE_SUCCESS", "NONE_FAILED", "ALL_DONE", "AT_LEAST_ONE_FAILED", "ALL_FAILED"
]
ConditionOp = Literal[
    "EQUAL_TO", "NOT_EQUAL", "GREATER_THAN", "GREATER_THAN_OR_EQUAL", "LESS_THAN", "LESS_THAN_OR_EQUAL"
]
TASK_TYPES = ("python_task", "notebook_task", "sql_task", "condition_task", "run_job_task")
_FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _outcome(value: Any) -> Any:
    # `outcome: true` unquoted is a YAML boolean; Databricks writes the string "true".
    return str(value).lower() if isinstance(value, bool) else value


# --- tasks --------------------------------------------------------------------------------


class TaskDependency(Spec):
    """Run after `task_key`. On a condition task, `outcome` ("true"/"false") picks the branch."""

    task_key: TaskKey
    outcome: Annotated[Literal["true", "false"] | None, BeforeValidator(_outcome)] = None


class PythonTask(Spec):
    """Call `function` ("package.module:function") with keyword `parameters` (JSON values), or run
    `script` (a .py file relative to the job's folder) with `args` as its argv."""

    function: str | None = None
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    script: str | None = None
    args: list[Text] = Field(default_factory=list)

    @field_validator("script")
    @classmethod
    def _script_path(cls, value: str | None) -> str | None:
        return None if value is None else relative_path(value, ".py", "script", "src/train.py")

    @model_validator(mode="after")
    def _function_or_script(self) -> Self:
        exactly_one(self, ("function", "script"), "a python_task")
        found: list[tuple[Loc, str, Any]] = []
        if self.function is not None:
            if not _FUNCTION.fullmatch(self.function):
                found.append(
                    (("function",), "function must look like 'package.module:function'", self.function)
                )
            if self.args:
                found.append((("args",), "args go with script; a function takes parameters", None))
            found.extend(
                (
                    ("parameters", key),
                    f"parameter {key!r} must be a Python identifier (a keyword argument)",
                    key,
                )
                for key in self.parameters
                if not _IDENTIFIER.fullmatch(key)
            )
        if self.script is not None and self.parameters:
            found.append((("parameters",), "parameters go with function; a script takes args", None))
        raise_problems("PythonTask", found)
        return self


class NotebookTask(Spec):
    """Execute a notebook (.ipynb, relative to the job's folder) with `base_parameters` injected."""

    notebook_path: str
    base_parameters: dict[str, Text] = Field(default_factory=dict)

    @field_validator("notebook_path")
    @classmethod
    def _ipynb(cls, value: str) -> str:
        return relative_path(value, ".ipynb", "notebook_path", "notebooks/train.ipynb")


class SqlTask(Spec):
    """Run SQL over workspace tables: inline `query`, or a .sql `file` relative to the job's folder."""

    query: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _query_or_file(self) -> Self:
        exactly_one(self, ("query", "file"), "a sql_task")
        if self.query is not None and not self.query.strip():
            raise_problems("SqlTask", [(("query",), "query is empty", self.query)])
        return self

    @field_validator("file")
    @classmethod
    def _sql_file(cls, value: str | None) -> str | None:
        return None if value is None else relative_path(value, ".sql", "file", "sql/report.sql")


class ConditionTask(Spec):
    """Compare `left` with `right` (numbers if both parse as numbers, else text); dependants pick the
    branch with `outcome`."""

    op: ConditionOp
    left: Text
    right: Text


class RunJobTask(Spec):
    """Start the job named `job_name` with `job_parameters` and wait for it."""

    job_name: JobName
    job_parameters: dict[str, Text] = Field(default_factory=dict)


class Task(Spec):
    """One task of a job: exactly one of python_task, notebook_task, sql_task, condition_task and
    run_job_task, plus when it runs (`depends_on`, `run_if`) and how it is retried.

    `max_retries` is the number of retries after the first attempt; -1 retries until the task
    succeeds and needs a `timeout_seconds` on the task or the job. `timeout_seconds` 0 is no
    timeout. `compute` overrides the job's (`local` or `ray`).
    """

    task_key: TaskKey
    description: str | None = None
    depends_on: list[TaskDependency] = Field(default_factory=list)
    run_if: RunIf = "ALL_SUCCESS"
    compute: Compute | None = None
    timeout_seconds: Annotated[int, Field(ge=0)] = 0
    max_retries: Annotated[int, Field(ge=-1)] = 0
    min_retry_interval_millis: Annotated[int, Field(ge=0)] = 0
    retry_on_timeout: bool = False
    python_task: PythonTask | None = None
    notebook_task: NotebookTask | None = None
    sql_task: SqlTask | None = None
    condition_task: ConditionTask | None = None
    run_job_task: RunJobTask | None = None

    @model_validator(mode="after")
    def _one_type(self) -> Self:
        exactly_one(self, TASK_TYPES, "a task")
        return self

    @property
    def kind(self) -> str:
        """`python`, `notebook`, `sql`, `condition` or `run_job`."""
        return next(name for name in TASK_TYPES if getattr(self, name) is not None).removesuffix("_task")

    @property
    def settings(self) -> PythonTask | NotebookTask | SqlTask | ConditionTask | RunJobTask:
        """The settings of this task's type (its python_task, notebook_task, ...)."""
        found: PythonTask | NotebookTask | SqlTask | ConditionTask | RunJobTask = getattr(
            self, f"{self.kind}_task"
        )
        return found

    def string_settings(self) -> Iterator[tuple[Loc, str]]:
        """Every string setting that may hold `{{...}}` references, with its location in the task."""
        settings = self.settings
        base: Loc = (f"{self.kind}_task",)
        if isinstance(settings, PythonTask):
            yield from _json_strings(settings.parameters, (*base, "parameters"))
            yield from (((*base, "args", i), arg) for i, arg in enumerate(settings.args))
        elif isinstance(settings, NotebookTask):
            yield from (((*base, "base_parameters", k), v) for k, v in settings.base_parameters.items())
        elif isinstance(settings, SqlTask) and settings.query is not None:
            yield (*base, "query"), settings.query
        elif isinstance(settings, ConditionTask):
            yield (*base, "left"), settings.left
            yield (*base, "right"), settings.right
        elif isinstance(settings, RunJobTask):
            yield from (((*base, "job_parameters", k), v) for k, v in settings.job_parameters.items())


def _json_strings(value: JsonValue, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_strings(item, (*loc, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _json_strings(item, (*loc, key))


# --- the job ------------------------------------------------------------------------------


def _tasks_not_empty(value: list[Task]) -> list[Task]:
    if not value:
        raise ValueError("a job needs at least one task")
    return value


class JobSpec(Spec):
    """A job: a DAG of tasks with parameters, limits, a schedule and/or trigger, and notifications.

    `timeout_seconds` bounds a whole run (0: none). `max_concurrent_runs` (1-1000) caps active
    runs; further runs wait in the queue, or are skipped with `queue: {enabled: false}`.
    `schedule` and `trigger` may both be set: either starts a run. `compute` is the default
    executor of its tasks.
    """

    name: JobName
    description: str | None = None
    parameters: list[JobParameter] = Field(default_factory=list)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    run_as: RunAs | None = None
    compute: Compute = "local"
    schedule: CronSchedule | None = None
    trigger: TriggerSettings | None = None
    max_concurrent_runs: Annotated[int, Field(ge=1, le=1000)] = 1
    queue: QueueSettings = Field(default_factory=QueueSettings)
    timeout_seconds: Annotated[int, Field(ge=0)] = 0
    email_notifications: EmailNotifications = Field(default_factory=EmailNotifications)
    webhook_notifications: WebhookNotifications = Field(default_factory=WebhookNotifications)
    tasks: Annotated[list[Task], AfterValidator(_tasks_not_empty)]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        raise_problems("JobSpec", _problems(self))
        return self

    # --- loading and saving

    @classmethod
    def from_yaml(cls, path_or_text: str | Path) -> JobSpec:
        """Load a job from a YAML file (a `Path`, or a `.yml`/`.yaml` path string) or YAML text.

        Raises InvalidJobSpec listing every problem as `file:line:column: field: message`.
        """
        return load_model(cls, path_or_text, InvalidJobSpec)

    def to_yaml(self) -> str:
        """This job as YAML, leaving out settings at their defaults; `from_yaml` reads it back equal."""
        return dump_yaml(self.model_dump(mode="json", exclude_defaults=True))

    # --- the DAG, for the runner

    def task(self, task_key: str) -> Task:
        """The task with this key; KeyError if there is none."""
        for task in self.tasks:
            if task.task_key == task_key:
                return task
        raise KeyError(task_key)

    def topological_order(self) -> list[Task]:
        """All tasks, each after every task it depends on; among ready tasks, file order wins."""
        position = {task.task_key: index for index, task in enumerate(self.tasks)}
        waiting = {task.task_key: len({d.task_key for d in task.depends_on}) for task in self.tasks}
        dependants = _dependants(self.tasks)
        ready = [position[key] for key, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[Task] = []
        while ready:
            task = self.tasks[heapq.heappop(ready)]
            order.append(task)
            for key in dependants[task.task_key]:
                waiting[key] -= 1
                if waiting[key] == 0:
                    heapq.heappush(ready, position[key])
        return order

    def upstream(self, task_key: str) -> set[str]:
        """Keys of the tasks `task_key` depends on, directly or through other tasks."""
        return _reach(task_key, {t.task_key: [d.task_key for d in t.depends_on] for t in self.tasks})

    def downstream(self, task_key: str) -> set[str]:
        """Keys of the tasks that depend on `task_key`, directly or through other tasks."""
        return _reach(task_key, _dependants(self.tasks))

    def compute_for(self, task_key: str) -> Compute:
        """Where the task runs: its own `compute`, else the job's."""
        return self.task(task_key).compute or self.compute

    def runs_as(self, owner: str) -> str:
        """The principal a run of this job acts as: its `run_as`, else the job's `owner`."""
        return self.run_as.principal if self.run_as is not None else owner

    def parameter_defaults(self) -> dict[str, str]:
        """The job parameters with their default values."""
        return {p.name: p.default for p in self.parameters}


def _dependants(tasks: list[Task]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {task.task_key: [] for task in tasks}
    for task in tasks:
        for key in dict.fromkeys(d.task_key for d in task.depends_on):
            found.setdefault(key, []).append(task.task_key)
    return found


def _reach(start: str, edges: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(edges.get(start, []))
    while todo:
        key = todo.pop()
        if key not in seen:
            seen.add(key)
            todo.extend(edges.get(key, []))
    seen.discard(start)
    return seen


# --- whole-spec checks --------------------------------------------------------------------

Found = Iterator[tuple[Loc, str, Any]]


def _problems(spec: JobSpec) -> Found:
    index: dict[str, int] = {}
    for i, task in enumerate(spec.tasks):
        if task.task_key in index:
            yield (
                ("tasks", i, "task_key"),
                f"duplicate task_key '{task.task_key}' (also tasks[{index[task.task_key]}]); "
                "task keys are unique within a job",
                task.task_key,
            )
        else:
            index[task.task_key] = i
    names: dict[str, int] = {}
    for j, parameter in enumerate(spec.parameters):
        if parameter.name in names:
            yield (("parameters", j, "name"), f"duplicate parameter '{parameter.name}'", parameter.name)
        names.setdefault(parameter.name, j)
    yield from _dependency_problems(spec, index)
    yield from _cycles(spec, index)
    yield from _reference_problems(spec, index, set(names))
    for i, task in enumerate(spec.tasks):
        if task.max_retries == -1 and task.timeout_seconds == 0 and spec.timeout_seconds == 0:
            yield (
                ("tasks", i, "max_retries"),
                "max_retries -1 retries until the task succeeds: set timeout_seconds on the task or "
                "the job, so a task that always fails stops",
                -1,
            )
        if task.run_job_task is not None and task.run_job_task.job_name == spec.name:
            yield (
                ("tasks", i, "run_job_task", "job_name"),
                f"job '{spec.name}' cannot run itself",
                spec.name,
            )


def _dependency_problems(spec: JobSpec, index: dict[str, int]) -> Found:
    known = ", ".join(index)
    for i, task in enumerate(spec.tasks):
        seen: set[str] = set()
        for d, dependency in enumerate(task.depends_on):
            loc: Loc = ("tasks", i, "depends_on", d)
            if dependency.task_key not in index:
                yield (
                    (*loc, "task_key"),
                    f"no task '{dependency.task_key}' in this job (tasks: {known})",
                    dependency.task_key,
                )
                continue
            if dependency.task_key in seen:
                yield (
                    (*loc, "task_key"),
                    f"'{dependency.task_key}' is already in depends_on",
                    dependency.task_key,
                )
            seen.add(dependency.task_key)
            upstream = spec.tasks[index[dependency.task_key]]
            if dependency.outcome is not None and upstream.condition_task is None:
                yield (
                    (*loc, "outcome"),
                    f"outcome is only for dependencies on a condition task; '{upstream.task_key}' is a "
                    f"{upstream.kind} task",
                    dependency.outcome,
                )


def _cycles(spec: JobSpec, index: dict[str, int]) -> Found:
    """Each dependency cycle once, at the `depends_on` entry that closes it (iterative DFS)."""
    edges = {
        key: [(d, dep.task_key) for d, dep in enumerate(spec.tasks[i].depends_on) if dep.task_key in index]
        for key, i in index.items()
    }
    done: set[str] = set()
    for root in index:
        if root in done:
            continue
        path, on_path = [root], {root}
        stack = [iter(edges[root])]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                done.add(path[-1])
                on_path.discard(path.pop())
                stack.pop()
                continue
            d, key = step
            if key in on_path:
                cycle = [*path[path.index(key) :], key]
                yield (
                    ("tasks", index[path[-1]], "depends_on", d, "task_key"),
                    f"dependency cycle: {' -> '.join(cycle)} (each task depends on the next)",
                    key,
                )
            elif key not in done:
                path.append(key)
                on_path.add(key)
                stack.append(iter(edges[key]))


def _reference_problems(spec: JobSpec, index: dict[str, int], parameters: set[str]) -> Found:
    declared = f"parameters: {', '.join(sorted(parameters))}" if parameters else "the job declares none"
    for j, parameter in enumerate(spec.parameters):
        for text in references(parameter.default):
            try:
                kind = parse_reference(text).kind
            except ValueError as exc:
                yield (
                    ("parameters", j, "default"),
                    f"parameter '{parameter.name}': {exc}",
                    parameter.default,
                )
                continue
            if kind != "job":
                yield (
                    ("parameters", j, "default"),
                    f"parameter '{parameter.name}': a default may only use run values such as "
                    f"{{{{job.run_id}}}} or {{{{job.start_time.iso_date}}}}, not '{{{{{text}}}}}'",
                    parameter.default,
                )
    tasks = ", ".join(index)
    for i, task in enumerate(spec.tasks):
        upstream: set[str] | None = None
        for loc, value in task.string_settings():
            for text in references(value):
                where: Loc = ("tasks", i, *loc)
                try:
                    ref = parse_reference(text)
                except ValueError as exc:
                    yield where, f"task '{task.task_key}': {exc}", value
                    continue
                said = f"task '{task.task_key}' reads '{ref.braced}'"
                if ref.kind == "job_parameter" and ref.name not in parameters:
                    yield where, f"{said} but there is no job parameter '{ref.name}' ({declared})", value
                elif ref.task_key is not None:
                    if ref.task_key not in index:
                        yield (
                            where,
                            f"{said} but there is no task '{ref.task_key}' in this job (tasks: {tasks})",
                            value,
                        )
                        continue
                    upstream = spec.upstream(task.task_key) if upstream is None else upstream
                    if ref.task_key == task.task_key:
                        yield where, f"{said}: a task cannot read its own values", value
                    elif ref.task_key not in upstream:
                        yield (
                            where,
                            f"{said} but '{ref.task_key}' is not upstream of it: add it to depends_on "
                            "(directly or through another task)",
                            value,
                        )
