"""Batch and incremental scoring as a job task.

```yaml
- task_key: score
  python_task:
    function: "lakestack.jobs.library.score:score_table"
    parameters:
      model_uri: "models:/prod.churn.model@champion"
      input_table: prod.churn.customers
      output_table: prod.churn.predictions
      incremental: "true"          # only rows that arrived since the last run, exactly once
```

Sets the task values `rows_scored`, `output_version` (null when nothing was new),
`model_version` and `input_version` for downstream tasks (e.g. a monitor refresh).
"""

from __future__ import annotations

from typing import Any

from lakestack.errors import InvalidParameter
from lakestack.jobs import context, task_values

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def score_table(
    model_uri: str,
    input_table: str,
    output_table: str,
    mode: str = "append",
    incremental: bool | str = False,
    keys: list[str] | str | None = None,
    batch_size: int | str = 100_000,
    engine: str = "auto",
) -> dict[str, Any]:
    """Score `input_table` with `model_uri` into `output_table` as the run's principal.

    Parameters arrive as text from job parameters, so booleans accept true/false and `keys` a
    comma-separated list. On a task with `compute: ray` the scoring runs on Ray Data.
    """
    result = (
        context.workspace()
        .models.score_table(
            model_uri,
            input_table,
            output_table,
            mode=mode,
            keys=_keys(keys),
            batch_size=int(batch_size),
            incremental=_flag(incremental, "incremental"),
            engine=engine,
        )
        .to_dict()
    )
    for key in ("rows_scored", "output_version", "model_version", "input_version"):
        task_values.set(key, result[key])
    return result


def _flag(value: bool | str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise InvalidParameter(f"Parameter {name}={value!r} of the score task is not true or false.")


def _keys(value: list[str] | str | None) -> list[str] | None:
    if value is None or isinstance(value, list):
        return value
    return [k.strip() for k in value.split(",") if k.strip()] or None
