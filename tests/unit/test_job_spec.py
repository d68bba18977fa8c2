"""Job specs: a realistic job loads, round-trips and orders its tasks; every rule rejects bad specs
with an exact message at the exact line and column."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from lakestack.errors import InvalidJobSpec, InvalidParameter, JobError
from lakestack.jobs import (
    ConditionTask,
    CronSchedule,
    JobParameter,
    JobSpec,
    NotebookTask,
    PythonTask,
    SqlTask,
    Task,
    TaskDependency,
    parse_reference,
    references,
)
from lakestack.jobs.cron import validate_quartz_cron

CHURN_JOB = """\
name: churn training
description: Refresh features, train, and deploy when the model is good enough.
parameters:
  - name: catalog
    default: dev
  - name: min_auc
    default: 0.8
  - name: run_date
    default: "{{job.start_time.iso_date}}"
tags:
  team: ml
  cost_center: 1234
schedule:
  quartz_cron_expression: "0 0 2 ? * MON-FRI"
  timezone_id: Europe/Paris
trigger:
  table_update:
    table_names: [Dev.Churn.Raw_Events]
    condition: ALL_UPDATED
    wait_after_last_change_seconds: 60
max_concurrent_runs: 2
queue: {enabled: false}
timeout_seconds: 7200
email_notifications:
  on_failure: [ml-oncall@example.com]
webhook_notifications:
  on_success:
    - id: slack-ml
  on_failure:
    - url: https://hooks.example.com/ml
run_as:
  service_principal_name: churn-bot
tasks:
  - task_key: refresh_features
    python_task:
      function: churn.features:refresh
      parameters:
        catalog: "{{job.parameters.catalog}}"
        as_of: "{{ job.parameters.run_date }}"
        windows: [7, 30]
  - task_key: train
    depends_on:
      - task_key: refresh_features
    max_retries: 2
    min_retry_interval_millis: 30000
    retry_on_timeout: true
    timeout_seconds: 3600
    compute: ray
    python_task:
      script: ./src/train.py
      args: ["--catalog", "{{job.parameters.catalog}}", "--epochs", 10]
  - task_key: good_enough
    depends_on: [{task_key: train}]
    condition_task:
      op: GREATER_THAN_OR_EQUAL
      left: "{{tasks.train.values.auc}}"
      right: "{{job.parameters.min_auc}}"
  - task_key: deploy
    depends_on:
      - task_key: good_enough
        outcome: "true"
    notebook_task:
      notebook_path: notebooks/deploy.ipynb
      base_parameters:
        model_uri: "{{tasks.train.values.model_uri}}"
  - task_key: report
    depends_on:
      - task_key: deploy
      - task_key: good_enough
        outcome: false
    run_if: AT_LEAST_ONE_SUCCESS
    sql_task:
      query: |
        SELECT count(*) FROM dev.churn.features
        WHERE run_id = '{{job.run_id}}'
"""


#: A valid task list, appended after the settings a test is about.
TASK = "tasks:\n  - task_key: t\n    python_task: {function: m:f}\n"


def problems(text: str) -> list[str]:
    """The problem lines InvalidJobSpec reports for YAML `text`."""
    with pytest.raises(InvalidJobSpec) as info:
        JobSpec.from_yaml(textwrap.dedent(text))
    assert str(info.value) == "\n".join(info.value.problems)
    return list(info.value.problems)


def job(*tasks: Task, **settings: object) -> JobSpec:
    return JobSpec.model_validate({"name": "j", "tasks": list(tasks), **settings})


def py(key: str, *depends: str) -> Task:
    return Task(
        task_key=key,
        depends_on=[TaskDependency(task_key=d) for d in depends],
        python_task=PythonTask(function="m:f"),
    )


# --- a realistic job ------------------------------------------------------------------


def test_realistic_job_loads_with_every_setting() -> None:
    spec = JobSpec.from_yaml(CHURN_JOB)
    assert spec.name == "churn training"
    assert spec.parameter_defaults() == {
        "catalog": "dev",
        "min_auc": "0.8",
        "run_date": "{{job.start_time.iso_date}}",
    }
    assert spec.tags == {"team": "ml", "cost_center": "1234"}
    assert spec.schedule is not None
    assert spec.schedule.quartz_cron_expression == "0 0 2 ? * MON-FRI"
    assert (spec.schedule.timezone_id, spec.schedule.pause_status) == ("Europe/Paris", "UNPAUSED")
    assert spec.trigger is not None and spec.trigger.table_update is not None
    assert spec.trigger.table_update.table_names == ["dev.churn.raw_events"]
    assert spec.trigger.table_update.condition == "ALL_UPDATED"
    assert (spec.max_concurrent_runs, spec.queue.enabled, spec.timeout_seconds) == (2, False, 7200)
    assert spec.email_notifications.on_failure == ["ml-oncall@example.com"]
    assert spec.webhook_notifications.on_success[0].id == "slack-ml"
    assert spec.webhook_notifications.on_failure[0].url == "https://hooks.example.com/ml"
    assert spec.run_as is not None and spec.run_as.service_principal_name == "churn-bot"
    assert [t.kind for t in spec.tasks] == ["python", "python", "condition", "notebook", "sql"]

    train = spec.task("train")
    assert isinstance(train.settings, PythonTask)
    assert train.settings.script == "src/train.py"
    assert train.settings.args == ["--catalog", "{{job.parameters.catalog}}", "--epochs", "10"]
    assert (train.max_retries, train.min_retry_interval_millis, train.retry_on_timeout) == (2, 30000, True)
    assert spec.compute_for("train") == "ray"
    assert spec.compute_for("deploy") == "local"
    refresh = spec.task("refresh_features").settings
    assert isinstance(refresh, PythonTask)
    assert refresh.parameters["windows"] == [7, 30]
    assert spec.task("deploy").depends_on == [TaskDependency(task_key="good_enough", outcome="true")]
    assert spec.task("report").depends_on[1].outcome == "false"
    assert spec.task("report").run_if == "AT_LEAST_ONE_SUCCESS"
    assert spec.task("train").run_if == "ALL_SUCCESS"


def test_realistic_job_defaults() -> None:
    spec = JobSpec.from_yaml("name: minimal\ntasks:\n  - task_key: only\n    sql_task: {query: select 1}\n")
    assert (spec.compute, spec.max_concurrent_runs, spec.timeout_seconds) == ("local", 1, 0)
    assert spec.queue.enabled is True
    assert spec.schedule is None and spec.trigger is None and spec.run_as is None
    task = spec.tasks[0]
    assert (task.run_if, task.max_retries, task.timeout_seconds, task.compute) == ("ALL_SUCCESS", 0, 0, None)
    assert CronSchedule(quartz_cron_expression="0 0 * * * ?").timezone_id == "UTC"


def test_yaml_round_trip_keeps_the_job_and_leaves_out_defaults() -> None:
    spec = JobSpec.from_yaml(CHURN_JOB)
    text = spec.to_yaml()
    assert JobSpec.from_yaml(text) == spec
    assert "run_if: ALL_SUCCESS" not in text and "compute: local" not in text
    assert "  queue:\n" not in text and "queue:\n  enabled: false\n" in text
    assert "  - task_key: refresh_features\n" in text  # list items indented under their key
    assert "      query: |\n        SELECT count(*) FROM dev.churn.features\n" in text
    assert "  default: '0.8'\n" in text  # numbers given as text stay text


def test_job_built_in_python_equals_the_yaml_one_and_round_trips() -> None:
    spec = JobSpec(
        name="train",
        parameters=[JobParameter(name="threshold", default="0.7")],
        tasks=[
            Task(task_key="fit", python_task=PythonTask(function="pkg.train:fit", parameters={"n": 3})),
            Task(
                task_key="check",
                depends_on=[TaskDependency(task_key="fit")],
                condition_task=ConditionTask(
                    op="GREATER_THAN", left="{{tasks.fit.values.auc}}", right="{{job.parameters.threshold}}"
                ),
            ),
            Task(
                task_key="publish",
                depends_on=[TaskDependency(task_key="check", outcome="true")],
                notebook_task=NotebookTask(notebook_path="nb/publish.ipynb"),
            ),
        ],
    )
    text = spec.to_yaml()
    assert JobSpec.from_yaml(text) == spec
    assert text.startswith("name: train\nparameters:\n  - name: threshold\n    default: '0.7'\ntasks:\n")


def test_from_yaml_reads_paths_and_names_them_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "job.yml"
    path.write_text(CHURN_JOB)
    assert JobSpec.from_yaml(path) == JobSpec.from_yaml(str(path)) == JobSpec.from_yaml(CHURN_JOB)
    path.write_text("name: x\ntasks:\n  - task_key: a\n")
    with pytest.raises(InvalidJobSpec) as info:
        JobSpec.from_yaml(path)
    assert info.value.problems == (
        f"{path}:3:5: tasks[0]: a task needs one of python_task, notebook_task, sql_task, condition_task, "
        "run_job_task",
    )
    with pytest.raises(InvalidJobSpec, match=r"nope\.yml: no such file"):
        JobSpec.from_yaml(str(tmp_path / "nope.yml"))


def test_invalid_job_spec_is_an_invalid_parameter_with_its_own_code() -> None:
    with pytest.raises(InvalidJobSpec) as info:
        JobSpec.from_yaml("name: x\n")
    error = info.value
    assert isinstance(error, InvalidParameter) and isinstance(error, JobError)
    assert (error.code, error.http_status, error.exit_code) == ("INVALID_JOB_SPEC", 400, 2)
    assert error.to_dict() == {
        "error_code": "INVALID_JOB_SPEC",
        "message": "<string>:1:1: tasks: required field is missing",
    }


def test_several_problems_are_all_reported_in_file_order() -> None:
    assert problems(
        """\
        name: x
        max_concurrent_runs: 0
        tasks:
          - task_key: a
            run_if: ALWAYS
            sql_task: {query: select 1}
        colour: blue
        """
    ) == [
        "<string>:2:1: max_concurrent_runs: Input should be greater than or equal to 1 (got 0)",
        "<string>:5:5: tasks[0].run_if: Input should be 'ALL_SUCCESS', 'AT_LEAST_ONE_SUCCESS', "
        "'NONE_FAILED', "
        "'ALL_DONE', 'AT_LEAST_ONE_FAILED' or 'ALL_FAILED' (got 'ALWAYS')",
        "<string>:7:1: colour: unknown field 'colour'; allowed: name, description, parameters, tags, run_as, "
        "compute, schedule, trigger, max_concurrent_runs, queue, timeout_seconds, email_notifications, "
        "webhook_notifications, tasks",
    ]


# --- the DAG --------------------------------------------------------------------------


def test_topological_order_is_deterministic_and_keeps_file_order_among_ready_tasks() -> None:
    spec = job(
        py("report", "train_b", "train_a"),
        py("train_b", "features"),
        py("train_a", "features"),
        py("features"),
    )
    assert [t.task_key for t in spec.topological_order()] == ["features", "train_b", "train_a", "report"]
    spec = job(py("z"), py("y"), py("x", "z"), py("w"))
    assert [t.task_key for t in spec.topological_order()] == ["z", "y", "x", "w"]


def test_upstream_and_downstream_are_transitive() -> None:
    spec = job(py("a"), py("b", "a"), py("c", "b"), py("d", "a"), py("e"))
    assert spec.upstream("c") == {"a", "b"}
    assert spec.upstream("a") == set()
    assert spec.downstream("a") == {"b", "c", "d"}
    assert spec.downstream("e") == set()
    with pytest.raises(KeyError):
        spec.task("missing")


def test_python_api_errors_carry_the_location() -> None:
    with pytest.raises(ValidationError) as info:
        job(py("a", "b"), py("b", "a"))
    (error,) = info.value.errors()
    assert error["loc"] == ("tasks", 1, "depends_on", 0, "task_key")
    assert error["msg"] == "dependency cycle: a -> b -> a (each task depends on the next)"


# --- references -----------------------------------------------------------------------


def test_references_are_listed_in_order_without_braces_or_duplicates() -> None:
    text = "run {{ job.run_id }} of {{job.parameters.env}} again {{job.run_id}} and {{tasks.t-1.values.uri}}"
    assert references(text) == ["job.run_id", "job.parameters.env", "tasks.t-1.values.uri"]
    assert references("no references, {single} or {{ unclosed") == []


@pytest.mark.parametrize(
    ("text", "kind", "name", "task_key"),
    [
        ("job.parameters.env", "job_parameter", "env", None),
        ("job.run_id", "job", "run_id", None),
        ("job.start_time", "job", "start_time", None),
        ("job.start_time.iso_date", "job", "start_time.iso_date", None),
        ("job.trigger.type", "job", "trigger.type", None),
        ("task.name", "task", "name", None),
        ("tasks.train.values.model_uri", "task_value", "model_uri", "train"),
        ("tasks.train.result_state", "upstream_task", "result_state", "train"),
    ],
)
def test_parse_reference_says_what_a_reference_reads(
    text: str, kind: str, name: str, task_key: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.kind, ref.name, ref.task_key, ref.braced) == (kind, name, task_key, "{{" + text + "}}")


@pytest.mark.parametrize(
    "text",
    ["job", "job.parameters", "job.parameters.a.b", "job.start_time.week", "tasks.x.values", "env", ""],
)
def test_parse_reference_rejects_unknown_forms(text: str) -> None:
    with pytest.raises(
        ValueError, match=r"unknown reference '\{\{" + text.replace(".", r"\.") + r"\}\}'; use one"
    ):
        parse_reference(text)


# --- YAML-level problems ----------------------------------------------------------------


def test_duplicate_keys_are_rejected_with_both_lines() -> None:
    assert problems(
        """\
        name: a
        tasks:
          - task_key: x
            python_task: {function: m:f}
            task_key: y
        name: b
        """
    ) == [
        "<string>:5:5: duplicate key 'task_key' (first defined at line 3)",
        "<string>:6:1: duplicate key 'name' (first defined at line 1)",
    ]


def test_mapping_keys_are_read_as_text() -> None:
    spec = JobSpec.from_yaml("name: a\ntags: {on: x, 1: y, 'yes': z}\n" + TASK)
    assert spec.tags == {"on": "x", "1": "y", "yes": "z"}
    assert problems("name: a\ntags: {1: a, '1': b}\n" + TASK) == [
        "<string>:2:14: duplicate key '1' (first defined at line 2)"
    ]


def test_malformed_yaml_points_at_the_error() -> None:
    assert problems("name: a\ntasks:\n  - task_key: x\n   python_task: {}\n") == [
        "<string>:4:4: invalid YAML: while parsing a block collection, expected <block end>, "
        "but found '<block mapping start>'"
    ]
    assert problems("") == ["<string>:1:1: the file is empty: expected a mapping"]
    assert problems("- a\n") == [
        "<string>:1:1: expected a mapping (name, description, parameters, tags, ...), got a list"
    ]


def test_only_plain_yaml_is_loaded() -> None:
    assert problems("name: !!python/object/apply:os.system [echo hi]\ntasks: []\n") == [
        "<string>:1:7: unsupported YAML tag 'tag:yaml.org,2002:python/object/apply:os.system': use a plain "
        "list"
    ]
    assert problems("name: !!binary aGk=\ntasks: []\n") == [
        "<string>:1:7: unsupported YAML tag 'tag:yaml.org,2002:binary': use plain values"
    ]


def test_alias_bombs_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 6)]
    (problem,) = problems("\n".join(lines) + "\n")
    assert problem.endswith("invalid YAML: more than 100000 values (are aliases expanding without end?)")


def test_merge_keys_and_dates_work() -> None:
    spec = JobSpec.from_yaml(
        textwrap.dedent(
            """\
            name: a
            parameters:
              - {name: day, default: 2024-01-31}
            tasks:
              - &base
                task_key: x
                max_retries: 3
                python_task: {function: m:f}
              - <<: *base
                task_key: y
            """
        )
    )
    assert spec.parameter_defaults() == {"day": "2024-01-31"}
    assert [(t.task_key, t.max_retries) for t in spec.tasks] == [("x", 3), ("y", 3)]
    assert JobSpec.from_yaml(spec.to_yaml()) == spec


# --- field rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "name: ../etc\n" + TASK,
            "<string>:1:1: name: invalid job name '../etc': use letters, digits, spaces, '_', '-' and '.', "
            "starting with a letter or digit (at most 128 characters), e.g. 'churn training'",
            id="job-name-path",
        ),
        pytest.param(
            "name: 'churn '\n" + TASK,
            "<string>:1:1: name: invalid job name 'churn ': use letters, digits, spaces, '_', '-' and '.', "
            "starting with a letter or digit (at most 128 characters), e.g. 'churn training'",
            id="job-name-trailing-space",
        ),
        pytest.param(
            "name: a\ntasks:\n  - task_key: train.model\n    python_task: {function: m:f}\n",
            "<string>:3:5: tasks[0].task_key: invalid task_key 'train.model': use letters, digits, '_' and "
            "'-', "
            "not starting with '-' (at most 100 characters), e.g. 'train_model'",
            id="task-key",
        ),
        pytest.param(
            "name: a\ntasks:\n  - python_task: {function: m:f}\n",
            "<string>:3:5: tasks[0].task_key: required field is missing",
            id="task-key-missing",
        ),
        pytest.param(
            "name: a\ntasks:\n  - task_key: t\n    pyton_task: {function: m:f}\n",
            "<string>:4:5: tasks[0].pyton_task: unknown field 'pyton_task'; did you mean 'python_task'?",
            id="unknown-field",
        ),
        pytest.param(
            "name: a\ntasks: []\n",
            "<string>:2:1: tasks: a job needs at least one task",
            id="no-tasks",
        ),
        pytest.param(
            "name: a\ntasks:\n  - task_key: t\n    python_task: {function: m:f}\n    sql_task: {query: "
            "select 1}\n",
            "<string>:5:5: tasks[0].sql_task: a task takes only one of python_task, notebook_task, sql_task, "
            "condition_task, run_job_task; it already has python_task",
            id="two-task-types",
        ),
        pytest.param(
            "name: a\nparameters:\n  - name: env-name\n    default: x\n" + TASK,
            "<string>:3:5: parameters[0].name: invalid parameter name 'env-name': use letters, digits and "
            "'_', "
            "starting with a letter or '_' (at most 128 characters), e.g. 'catalog'",
            id="parameter-name",
        ),
        pytest.param(
            "name: a\nparameters:\n  - name: env\n" + TASK,
            "<string>:3:5: parameters[0].default: required field is missing",
            id="parameter-default-missing",
        ),
        pytest.param(
            "name: a\nparameters:\n  - name: flag\n    default: yes\n" + TASK,
            "<string>:4:5: parameters[0].default: expected text, got the boolean true: quote it, since YAML "
            "reads unquoted true/false/yes/no/on/off as booleans",
            id="boolean-as-text",
        ),
        pytest.param(
            "name: a\ntimeout_seconds: -1\n" + TASK,
            "<string>:2:1: timeout_seconds: Input should be greater than or equal to 0 (got -1)",
            id="job-timeout",
        ),
        pytest.param(
            "name: a\nmax_concurrent_runs: 1001\n" + TASK,
            "<string>:2:1: max_concurrent_runs: Input should be less than or equal to 1000 (got 1001)",
            id="max-concurrent-runs",
        ),
        pytest.param(
            "name: a\ncompute: spark\n" + TASK,
            "<string>:2:1: compute: Input should be 'local' or 'ray' (got 'spark')",
            id="compute",
        ),
        pytest.param(
            "name: a\ntasks:\n  - task_key: t\n    max_retries: -2\n    python_task: {function: m:f}\n",
            "<string>:4:5: tasks[0].max_retries: Input should be greater than or equal to -1 (got -2)",
            id="max-retries",
        ),
        pytest.param(
            "name: a\ntasks:\n  - task_key: t\n    max_retries: -1\n    python_task: {function: m:f}\n",
            "<string>:4:5: tasks[0].max_retries: max_retries -1 retries until the task succeeds: set "
            "timeout_seconds on the task or the job, so a task that always fails stops",
            id="unlimited-retries-without-timeout",
        ),
        pytest.param(
            "name: a\ntags:\n  team: [a]\n" + TASK,
            "<string>:3:3: tags.team: Input should be a valid string",
            id="tag-value",
        ),
        pytest.param(
            "name: a\nqueue: {enabled: maybe}\n" + TASK,
            "<string>:2:9: queue.enabled: Input should be a valid boolean, unable to interpret input (got "
            "'maybe')",
            id="queue",
        ),
    ],
)
def test_field_rules(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_unlimited_retries_are_allowed_with_a_timeout() -> None:
    spec = JobSpec.from_yaml(
        "name: a\ntimeout_seconds: 600\ntasks:\n  - task_key: t\n    max_retries: -1\n"
        "    python_task: {function: m:f}\n"
    )
    assert spec.tasks[0].max_retries == -1


# --- task types -----------------------------------------------------------------------


def one_task(body: str) -> str:
    """A job whose only task (line 3) has `body` (indented 4) from line 4 on."""
    return "name: a\ntasks:\n  - task_key: t\n" + textwrap.indent(textwrap.dedent(body), "    ")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "description: nothing to do\n",
            "<string>:3:5: tasks[0]: a task needs one of python_task, notebook_task, sql_task, "
            "condition_task, "
            "run_job_task",
            id="no-type",
        ),
        pytest.param(
            "python_task: {}\n",
            "<string>:4:5: tasks[0].python_task: a python_task needs one of function, script",
            id="python-neither",
        ),
        pytest.param(
            "python_task:\n  function: m:f\n  script: run.py\n",
            "<string>:6:7: tasks[0].python_task.script: a python_task takes only one of function, script; "
            "it already has function",
            id="python-both",
        ),
        pytest.param(
            "python_task:\n  function: churn.train\n",
            "<string>:5:7: tasks[0].python_task.function: function must look like 'package.module:function'",
            id="python-function-format",
        ),
        pytest.param(
            "python_task:\n  function: m:f\n  args: [x]\n",
            "<string>:6:7: tasks[0].python_task.args: args go with script; a function takes parameters",
            id="python-args-with-function",
        ),
        pytest.param(
            "python_task:\n  script: run.py\n  parameters: {x: 1}\n",
            "<string>:6:7: tasks[0].python_task.parameters: parameters go with function; a script takes args",
            id="python-parameters-with-script",
        ),
        pytest.param(
            "python_task:\n  function: m:f\n  parameters: {model-uri: x}\n",
            "<string>:6:20: tasks[0].python_task.parameters.model-uri: parameter 'model-uri' must be a "
            "Python "
            "identifier (a keyword argument)",
            id="python-parameter-key",
        ),
        pytest.param(
            "python_task:\n  script: /opt/run.py\n",
            "<string>:5:7: tasks[0].python_task.script: script must be a path relative to the job's folder, "
            "e.g. 'src/train.py'",
            id="python-script-absolute",
        ),
        pytest.param(
            "python_task:\n  script: src/../../run.py\n",
            "<string>:5:7: tasks[0].python_task.script: script must stay inside the job's folder: no '..' in "
            "'src/../../run.py'",
            id="python-script-escapes",
        ),
        pytest.param(
            "python_task:\n  script: run.sh\n",
            "<string>:5:7: tasks[0].python_task.script: script must name a .py file, e.g. 'src/train.py'; "
            "got 'run.sh'",
            id="python-script-suffix",
        ),
        pytest.param(
            "notebook_task: {notebook_path: notebooks/train}\n",
            "<string>:4:21: tasks[0].notebook_task.notebook_path: notebook_path must name a .ipynb file, "
            "e.g. 'notebooks/train.ipynb'; got 'notebooks/train'",
            id="notebook-suffix",
        ),
        pytest.param(
            "sql_task: {query: select 1, file: q.sql}\n",
            "<string>:4:33: tasks[0].sql_task.file: a sql_task takes only one of query, file; it already has "
            "query",
            id="sql-both",
        ),
        pytest.param(
            "sql_task: {query: '  '}\n",
            "<string>:4:16: tasks[0].sql_task.query: query is empty",
            id="sql-empty",
        ),
        pytest.param(
            "sql_task: {file: q.txt}\n",
            "<string>:4:16: tasks[0].sql_task.file: file must name a .sql file, e.g. 'sql/report.sql'; got "
            "'q.txt'",
            id="sql-file-suffix",
        ),
        pytest.param(
            "condition_task: {op: GREATER, left: '1', right: '2'}\n",
            "<string>:4:22: tasks[0].condition_task.op: Input should be 'EQUAL_TO', 'NOT_EQUAL', "
            "'GREATER_THAN', "
            "'GREATER_THAN_OR_EQUAL', 'LESS_THAN' or 'LESS_THAN_OR_EQUAL' (got 'GREATER')",
            id="condition-op",
        ),
        pytest.param(
            "condition_task: {op: EQUAL_TO, left: '1'}\n",
            "<string>:4:5: tasks[0].condition_task.right: required field is missing",
            id="condition-right-missing",
        ),
        pytest.param(
            "run_job_task: {job_name: a}\n",
            "<string>:4:20: tasks[0].run_job_task.job_name: job 'a' cannot run itself",
            id="run-job-itself",
        ),
        pytest.param(
            "run_job_task: {job_name: 'other/job'}\n",
            "<string>:4:20: tasks[0].run_job_task.job_name: invalid job name 'other/job': use letters, "
            "digits, "
            "spaces, '_', '-' and '.', starting with a letter or digit (at most 128 characters), "
            "e.g. 'churn training'",
            id="run-job-name",
        ),
    ],
)
def test_task_type_rules(body: str, expected: str) -> None:
    assert problems(one_task(body)) == [expected]


def test_task_types_load_their_settings() -> None:
    spec = JobSpec.from_yaml(
        "name: a\ntasks:\n"
        "  - {task_key: s, sql_task: {file: ./sql/report.sql}}\n"
        "  - {task_key: c, condition_task: {op: EQUAL_TO, left: 1, right: 1.5}}\n"
        "  - {task_key: r, run_job_task: {job_name: other job, job_parameters: {n: 3}}}\n"
    )
    assert spec.task("s").settings == SqlTask(file="sql/report.sql")
    assert spec.task("c").settings == ConditionTask(op="EQUAL_TO", left="1", right="1.5")
    assert [t.kind for t in spec.tasks] == ["sql", "condition", "run_job"]
    assert spec.to_yaml().count("job_parameters:\n        n: '3'\n") == 1


# --- whole-spec rules -----------------------------------------------------------------


def test_unknown_dependency_names_the_tasks() -> None:
    assert problems(
        """\
        name: churn
        tasks:
          - task_key: ingest
            python_task: {function: churn.ingest:main}
          - task_key: train
            depends_on:
              - task_key: trian
            python_task: {function: churn.train:main}
        """
    ) == ["<string>:7:9: tasks[1].depends_on[0].task_key: no task 'trian' in this job (tasks: ingest, train)"]


def test_duplicate_task_keys_and_dependencies_and_parameters() -> None:
    assert problems(
        """\
        name: a
        parameters:
          - {name: env, default: dev}
          - {name: env, default: prod}
        tasks:
          - task_key: a
            python_task: {function: m:f}
          - task_key: b
            depends_on: [{task_key: a}, {task_key: a}]
            python_task: {function: m:f}
          - task_key: a
            python_task: {function: m:f}
        """
    ) == [
        "<string>:4:6: parameters[1].name: duplicate parameter 'env'",
        "<string>:9:34: tasks[1].depends_on[1].task_key: 'a' is already in depends_on",
        "<string>:11:5: tasks[2].task_key: duplicate task_key 'a' (also tasks[0]); task keys are unique "
        "within "
        "a job",
    ]


@pytest.mark.parametrize(
    ("depends", "expected"),
    [
        pytest.param(
            {"a": ["a"]},
            [
                "<string>:6:9: tasks[0].depends_on[0].task_key: dependency cycle: a -> a (each task depends "
                "on the next)"
            ],
            id="self",
        ),
        pytest.param(
            {"a": ["b"], "b": ["a"]},
            [
                "<string>:10:9: tasks[1].depends_on[0].task_key: dependency cycle: a -> b -> a (each task "
                "depends on "
                "the next)"
            ],
            id="two",
        ),
        pytest.param(
            {"a": ["c"], "b": ["a"], "c": ["b"], "d": ["c"]},
            [
                "<string>:10:9: tasks[1].depends_on[0].task_key: dependency cycle: a -> c -> b -> a (each "
                "task "
                "depends on the next)"
            ],
            id="three-with-a-tail",
        ),
    ],
)
def test_cycles_are_named_at_the_dependency_that_closes_them(
    depends: dict[str, list[str]], expected: list[str]
) -> None:
    lines = ["name: a", "tasks:"]
    for key in sorted(depends):
        lines += [f"  - task_key: {key}", "    python_task: {function: m:f}", "    depends_on:"]
        lines += [f"      - task_key: {d}" for d in depends[key]]
    assert problems("\n".join(lines) + "\n") == expected


def test_outcome_only_on_dependencies_on_condition_tasks() -> None:
    assert problems(
        """\
        name: a
        tasks:
          - task_key: train
            python_task: {function: m:f}
          - task_key: deploy
            depends_on:
              - task_key: train
                outcome: "true"
            python_task: {function: m:f}
        """
    ) == [
        "<string>:8:9: tasks[1].depends_on[0].outcome: outcome is only for dependencies on a condition task; "
        "'train' is a python task"
    ]
    assert problems(
        "name: a\ntasks:\n  - task_key: c\n    condition_task: {op: EQUAL_TO, left: a, right: b}\n"
        "  - task_key: d\n    depends_on: [{task_key: c, outcome: maybe}]\n    python_task: {function: m:f}\n"
    ) == ["<string>:6:32: tasks[1].depends_on[0].outcome: Input should be 'true' or 'false' (got 'maybe')"]


REFERENCES_JOB = """\
name: refs
parameters:
  - {name: env, default: dev}
tasks:
  - task_key: train
    python_task: {function: m:f}
  - task_key: check
    depends_on: [{task_key: train}]
    condition_task:
      op: GREATER_THAN
      left: "{{tasks.train.values.auc}}"
      right: "{{ %s }}"
  - task_key: deploy
    depends_on: [{task_key: check, outcome: "true"}]
    python_task:
      function: m:f
      parameters:
        options:
          - uri: "model {{tasks.train.values.model_uri}} in {{%s}}"
"""


@pytest.mark.parametrize(
    ("right", "deep", "expected"),
    [
        pytest.param("job.parameters.env", "job.parameters.env", [], id="valid"),
        pytest.param(
            "job.parameters.catalog",
            "task.run_id",
            [
                "<string>:12:7: tasks[1].condition_task.right: task 'check' reads "
                "'{{job.parameters.catalog}}' but "
                "there is no job parameter 'catalog' (parameters: env)"
            ],
            id="undeclared-parameter",
        ),
        pytest.param(
            "tasks.deploy.values.x",
            "tasks.deploy.values.y",
            [
                "<string>:12:7: tasks[1].condition_task.right: task 'check' reads "
                "'{{tasks.deploy.values.x}}' but "
                "'deploy' is not upstream of it: add it to depends_on (directly or through another task)",
                "<string>:19:13: tasks[2].python_task.parameters.options[0].uri: task 'deploy' reads "
                "'{{tasks.deploy.values.y}}': a task cannot read its own values",
            ],
            id="downstream-and-own",
        ),
        pytest.param(
            "tasks.traim.values.auc",
            "jobs.run_id",
            [
                "<string>:12:7: tasks[1].condition_task.right: task 'check' reads "
                "'{{tasks.traim.values.auc}}' but "
                "there is no task 'traim' in this job (tasks: train, check, deploy)",
                "<string>:19:13: tasks[2].python_task.parameters.options[0].uri: task 'deploy': unknown "
                "reference "
                "'{{jobs.run_id}}'; use one of job.parameters.<name>, job.run_id, job.start_time[.iso_date|"
                ".iso_datetime|.timestamp_ms|...], job.id, job.name, job.repair_count, job.trigger.type, "
                "task.name, "
                "task.run_id, task.execution_count, tasks.<task_key>.values.<key>, tasks.<task_key>.run_id|"
                "result_state",
            ],
            id="unknown-task-and-root",
        ),
    ],
)
def test_dynamic_references_must_name_parameters_and_upstream_tasks(
    right: str, deep: str, expected: list[str]
) -> None:
    text = REFERENCES_JOB % (right, deep)
    if expected:
        assert problems(text) == expected
    else:  # deploy reads train's values through check: transitive upstream is enough
        assert JobSpec.from_yaml(text).upstream("deploy") == {"train", "check"}


def test_reference_checks_cover_every_task_type() -> None:
    assert problems(
        """\
        name: a
        tasks:
          - task_key: n
            notebook_task: {notebook_path: n.ipynb, base_parameters: {p: "{{job.parameters.x}}"}}
          - task_key: s
            sql_task: {query: "select {{job.parameters.x}}"}
          - task_key: r
            run_job_task: {job_name: b, job_parameters: {p: "{{job.parameters.x}}"}}
          - task_key: p
            python_task: {script: p.py, args: ["{{job.parameters.x}}"]}
        """
    ) == [
        "<string>:4:63: tasks[0].notebook_task.base_parameters.p: task 'n' reads '{{job.parameters.x}}' but "
        "there "
        "is no job parameter 'x' (the job declares none)",
        "<string>:6:16: tasks[1].sql_task.query: task 's' reads '{{job.parameters.x}}' but there is no job "
        "parameter 'x' (the job declares none)",
        "<string>:8:50: tasks[2].run_job_task.job_parameters.p: task 'r' reads '{{job.parameters.x}}' but "
        "there "
        "is no job parameter 'x' (the job declares none)",
        "<string>:10:40: tasks[3].python_task.args[0]: task 'p' reads '{{job.parameters.x}}' but there is no "
        "job "
        "parameter 'x' (the job declares none)",
    ]


def test_parameter_defaults_may_only_use_run_values() -> None:
    assert problems(
        """\
        name: a
        parameters:
          - {name: day, default: "{{job.start_time.iso_date}}"}
          - {name: env, default: "{{job.parameters.day}}"}
          - {name: uri, default: "{{tasks.t.values.uri}}"}
        tasks:
          - task_key: t
            python_task: {function: m:f}
        """
    ) == [
        "<string>:4:17: parameters[1].default: parameter 'env': a default may only use run values such as "
        "{{job.run_id}} or {{job.start_time.iso_date}}, not '{{job.parameters.day}}'",
        "<string>:5:17: parameters[2].default: parameter 'uri': a default may only use run values such as "
        "{{job.run_id}} or {{job.start_time.iso_date}}, not '{{tasks.t.values.uri}}'",
    ]


# --- schedule, trigger, notifications, run_as -------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param(
            "schedule: {quartz_cron_expression: '0 0 2 * *'}",
            "<string>:1:12: schedule.quartz_cron_expression: a Quartz cron expression has 6 or 7 fields "
            "(seconds "
            "minutes hours day-of-month month day-of-week [year]), got 5; e.g. '0 30 2 * * ?' for 02:30 "
            "every day",
            id="cron-fields",
        ),
        pytest.param(
            "schedule: {quartz_cron_expression: '0 0 2 * * *'}",
            "<string>:1:12: schedule.quartz_cron_expression: exactly one of day-of-month (field 4) and "
            "day-of-week "
            "(field 6) must be '?', got '*' and '*'; e.g. '0 30 2 * * ?' for 02:30 every day",
            id="cron-question-mark",
        ),
        pytest.param(
            "schedule: {quartz_cron_expression: '0 61 2 * * ?'}",
            "<string>:1:12: schedule.quartz_cron_expression: minutes value '61' is out of range (0-59)",
            id="cron-range",
        ),
        pytest.param(
            "schedule: {quartz_cron_expression: '0 0 2 ? * MONDAY'}",
            "<string>:1:12: schedule.quartz_cron_expression: day-of-week value 'MONDAY' is out of range (1-7 "
            "or "
            "SUN-SAT)",
            id="cron-day-name",
        ),
        pytest.param(
            "schedule: {quartz_cron_expression: '0 0 2 * * ?', timezone_id: Europe/Pariss}",
            "<string>:1:51: schedule.timezone_id: unknown time zone 'Europe/Pariss'; did you mean "
            "'Europe/Paris'?",
            id="timezone",
        ),
        pytest.param(
            "schedule: {quartz_cron_expression: '0 0 2 * * ?', pause_status: STOPPED}",
            "<string>:1:51: schedule.pause_status: Input should be 'PAUSED' or 'UNPAUSED' (got 'STOPPED')",
            id="pause-status",
        ),
        pytest.param(
            "trigger: {pause_status: PAUSED}",
            "<string>:1:1: trigger: a trigger needs one of table_update, periodic",
            id="trigger-none",
        ),
        pytest.param(
            "trigger: {table_update: {table_names: [a.b.c]}, periodic: {interval: 1, unit: DAYS}}",
            "<string>:1:49: trigger.periodic: a trigger takes only one of table_update, periodic; it already "
            "has "
            "table_update",
            id="trigger-both",
        ),
        pytest.param(
            "trigger: {table_update: {table_names: [churn.features]}}",
            "<string>:1:40: trigger.table_update.table_names[0]: Invalid table name 'churn.features': "
            "expected 3 "
            "part(s) like 'dev.churn.features'.",
            id="trigger-table-name",
        ),
        pytest.param(
            "trigger: {table_update: {table_names: [a.b.c, A.B.C]}}",
            "<string>:1:47: trigger.table_update.table_names[1]: table 'a.b.c' is listed twice",
            id="trigger-table-twice",
        ),
        pytest.param(
            "trigger: {table_update: {table_names: []}}",
            "<string>:1:26: trigger.table_update.table_names: List should have at least 1 item after "
            "validation, "
            "not 0",
            id="trigger-no-tables",
        ),
        pytest.param(
            "trigger: {periodic: {interval: 0, unit: DAYS}}",
            "<string>:1:22: trigger.periodic.interval: Input should be greater than or equal to 1 (got 0)",
            id="periodic-interval",
        ),
        pytest.param(
            "trigger: {periodic: {interval: 1, unit: MINUTES}}",
            "<string>:1:35: trigger.periodic.unit: Input should be 'HOURS', 'DAYS' or 'WEEKS' (got "
            "'MINUTES')",
            id="periodic-unit",
        ),
        pytest.param(
            "email_notifications: {on_failure: [ml-oncall]}",
            "<string>:1:36: email_notifications.on_failure[0]: 'ml-oncall' is not an e-mail address",
            id="email",
        ),
        pytest.param(
            "webhook_notifications: {on_start: [{}]}",
            "<string>:1:36: webhook_notifications.on_start[0]: a webhook needs one of id, url",
            id="webhook-none",
        ),
        pytest.param(
            "webhook_notifications: {on_start: [{id: slack, url: 'https://x.io'}]}",
            "<string>:1:48: webhook_notifications.on_start[0].url: a webhook takes only one of id, url; it "
            "already "
            "has id",
            id="webhook-both",
        ),
        pytest.param(
            "webhook_notifications: {on_success: [{url: 'ftp://x.io/hook'}]}",
            "<string>:1:39: webhook_notifications.on_success[0].url: a webhook url must be an http:// or "
            "https:// "
            "URL with a host",
            id="webhook-scheme",
        ),
        pytest.param(
            "webhook_notifications: {on_failure: [{url: 'https://bot:s3cret@x.io/hook'}]}",
            "<string>:1:39: webhook_notifications.on_failure[0].url: a webhook url must not hold a user or "
            "password: use a destination id",
            id="webhook-credentials",
        ),
        pytest.param(
            "webhook_notifications: {on_failure: [{id: 'a b'}]}",
            "<string>:1:39: webhook_notifications.on_failure[0].id: invalid destination id 'a b': use "
            "letters, "
            "digits, '_', '-', '.'",
            id="webhook-id",
        ),
        pytest.param(
            "run_as: {user_name: ada, service_principal_name: bot}",
            "<string>:1:26: run_as.service_principal_name: run_as takes only one of user_name, "
            "service_principal_name; it already has user_name",
            id="run-as-both",
        ),
        pytest.param(
            "run_as: {}",
            "<string>:1:1: run_as: run_as needs one of user_name, service_principal_name",
            id="run-as-none",
        ),
    ],
)
def test_job_settings_rules(settings: str, expected: str) -> None:
    assert problems(f"{settings}\nname: a\n{TASK}") == [expected]


def test_secrets_in_webhook_urls_are_never_echoed() -> None:
    (problem,) = problems(
        f"webhook_notifications: {{on_failure: [{{url: 'https://bot:s3cret@x.io/hook'}}]}}\nname: a\n{TASK}"
    )
    assert "s3cret" not in problem


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 2 * * ?",
        "0 15 10 ? * MON-FRI",
        "0 0/5 14,18 * * ?",
        "0 0 12 L * ?",
        "0 0 12 L-3 * ?",
        "0 0 12 15W * ?",
        "0 0 12 ? * 6L",
        "0 0 12 ? * FRI#3",
        "0 0 12 1 JAN-MAR ? 2030",
        "*/30 * * ? * *",
    ],
)
def test_valid_quartz_expressions(expression: str) -> None:
    assert validate_quartz_cron(expression) == expression


def test_quartz_expressions_are_normalised() -> None:
    assert validate_quartz_cron("  0 0 2  ? *  mon-fri ") == "0 0 2 ? * MON-FRI"
