"""The pure parts of running jobs: state moves, conditions, reference substitution, task values."""

from __future__ import annotations

import pytest

from lakestack.errors import InvalidRunState, TaskValueError
from lakestack.jobs import task_values
from lakestack.jobs.references import substitute
from lakestack.jobs.states import transition
from lakestack.jobs.tasks import evaluate_condition


def test_transitions_allow_the_state_machine_and_refuse_the_rest() -> None:
    assert transition("task run", "1/t", "PENDING", "QUEUED") == "QUEUED"
    assert transition("task run", "1/t", "RUNNING", "TIMEDOUT") == "TIMEDOUT"
    assert transition("job run", "1", "FAILED", "RUNNING") == "RUNNING"  # a repair
    with pytest.raises(InvalidRunState) as wrong:
        transition("task run", "1/t", "SUCCESS", "RUNNING")
    assert (
        wrong.value.message
        == "Task run 1/t is SUCCESS and cannot become RUNNING (allowed moves: none: it has ended)."
    )
    with pytest.raises(InvalidRunState, match=r"allowed moves: CANCELED, QUEUED, RUNNING\)"):
        transition("job run", "7", "PENDING", "SUCCESS")
    with pytest.raises(InvalidRunState):
        transition("job run", "7", "SUCCESS", "RUNNING")  # a successful run is never repaired


@pytest.mark.parametrize(
    ("op", "left", "right", "expected"),
    [
        ("GREATER_THAN", "10", "9", True),  # numbers, not text ("10" < "9" as text)
        ("EQUAL_TO", "1.0", "1", True),
        ("LESS_THAN", "apple", "banana", True),
        ("EQUAL_TO", "nan", "nan", True),  # NaN is not a number here: compared as text
        ("NOT_EQUAL", "prod", "dev", True),
        ("GREATER_THAN_OR_EQUAL", "0.89", "0.9", False),
    ],
)
def test_conditions_compare_numbers_as_numbers_and_else_text(
    op: str, left: str, right: str, expected: bool
) -> None:
    assert evaluate_condition(op, left, right) is expected


def test_substitute_writes_values_into_text_or_keeps_a_lone_reference_typed() -> None:
    values = {"job.run_id": 7, "tasks.train.values.auc": 0.93, "job.parameters.env": "dev"}

    def lookup(ref: object) -> object:
        return values[ref.text]  # type: ignore[attr-defined]

    assert substitute("run {{ job.run_id }} in {{job.parameters.env}}", lookup) == "run 7 in dev"
    assert substitute("{{tasks.train.values.auc}}", lookup, keep_type=True) == 0.93
    assert substitute("{{tasks.train.values.auc}}", lookup) == "0.93"


def test_task_values_outside_a_job_stay_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(task_values.TASK_DIR_ENV, raising=False)
    task_values.set("uri", "models:/dev.churn.model/3")
    assert task_values.get("train", "uri") == "models:/dev.churn.model/3"
    assert task_values.get("train", "missing", default=1) == 1
    with pytest.raises(TaskValueError, match="not JSON-serialisable"):
        task_values.set("model", object())
    with pytest.raises(TaskValueError, match="Invalid task value key 'a b'"):
        task_values.set("a b", 1)
