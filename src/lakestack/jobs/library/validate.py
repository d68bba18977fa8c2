"""A python task that validates a model version: the gate between training and deployment.

```yaml
- task_key: validate
  depends_on: [{task_key: train}]
  python_task:
    function: "lakestack.jobs.library.validate:validate_model"
    parameters:
      model_uri: "{{tasks.train.values.model_uri}}"
      data: prod.churn.holdout
      label: churned
      problem_type: classification
      thresholds: ["roc_auc>=0.7"]                 # or a JSON list in a string
      min_improvement: ["roc_auc=0.01"]
      slices: ["recall>=0.5 where plan"]
      mode: enabled
- task_key: passed
  depends_on: [{task_key: validate}]
  condition_task: {op: EQUAL_TO, left: "{{tasks.validate.values.passed}}", right: "true"}
```

Task values for the tasks after it: `validation_status` (PASSED, FAILED or SKIPPED), `passed`
(true/false), `model_uri`, `version`, `run_id`, `report_uri` (the HTML report), `failed_checks`
and each candidate metric by name. With `fail_on_failure` the task itself fails when the model
does (after setting its values), for jobs that stop rather than branch.
"""

from __future__ import annotations

import json
import math
from typing import Any

from lakestack.errors import InvalidParameter
from lakestack.jobs import context, task_values
from lakestack.models.validation.checks import Comparison, MetadataRequirements
from lakestack.models.validation.result import ValidationResult


def _texts(value: Any, what: str) -> list[str]:
    """A list of strings from a list, a JSON list in a string, or a `;`-separated string."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidParameter(f"Parameter {what}: {text!r} is not a JSON list ({exc}).") from None
        else:
            return [part.strip() for part in text.split(";") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidParameter(f'Parameter {what} must be a list of strings such as ["roc_auc>=0.7"].')
    return value


def _flag(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", ""):
        return False
    raise InvalidParameter(f"Parameter {what} must be true or false, not {value!r}.")


def validate_model(
    model_uri: str,
    data: str,
    label: str,
    problem_type: str,
    thresholds: Any = None,
    min_improvement: Any = None,
    baseline: Any = None,
    slices: Any = None,
    required_tags: Any = None,
    require_signature: Any = True,
    require_input_example: Any = False,
    require_description: Any = False,
    mode: str = "enabled",
    champion_alias: str = "champion",
    challenger_alias: str = "challenger",
    fail_on_failure: Any = False,
) -> dict[str, Any]:
    """Validate `model_uri` on table `data` as the run's principal and set task values.

    `baseline` is a JSON object of metric -> value that a `min_improvement` compares against
    when the model has no champion yet (e.g. `{"roc_auc": 0.5}`).
    """
    baselines = json.loads(baseline) if isinstance(baseline, str) and baseline.strip() else baseline or {}
    if not isinstance(baselines, dict):
        raise InvalidParameter('Parameter baseline must be a JSON object such as {"roc_auc": 0.5}.')
    comparisons = []
    for text in _texts(min_improvement, "min_improvement"):
        parsed = Comparison.parse(text)
        value = baselines.get(parsed.metric)
        comparisons.append(Comparison.parse(text, None if value is None else float(value)))
    result = context.workspace().models.validate(
        model_uri,
        data,
        label,
        problem_type,
        thresholds=_texts(thresholds, "thresholds"),
        comparisons=comparisons,
        slices=_texts(slices, "slices"),
        metadata=MetadataRequirements(
            signature=_flag(require_signature, "require_signature"),
            input_example=_flag(require_input_example, "require_input_example"),
            description=_flag(require_description, "require_description"),
            tags=tuple(_texts(required_tags, "required_tags")),
        ),
        mode=mode,
        champion_alias=champion_alias,
        challenger_alias=challenger_alias,
    )
    values = publish(result)
    if _flag(fail_on_failure, "fail_on_failure") and result.status == "FAILED":
        failed = "; ".join(f"{c.name}: {c.detail}" for c in result.failed_checks)
        raise RuntimeError(
            f"Model {result.model_uri} failed validation: {failed}. Report: {result.report_html_uri}"
        )
    return values


def publish(result: ValidationResult) -> dict[str, Any]:
    """Set the task values a validation hands downstream; returns them."""
    values: dict[str, Any] = {
        "validation_status": result.status,
        "passed": result.passed,
        "model_uri": result.model_uri,
        "version": result.version,
        "run_id": result.run_id,
        "report_uri": result.report_html_uri,
        "failed_checks": [c.name for c in result.failed_checks],
    }
    # Task values are JSON: an undefined (NaN) or infinite metric is left out.
    values.update({k: v for k, v in result.metrics.items() if k not in values and math.isfinite(v)})
    for key, value in values.items():
        task_values.set(key, value)
    return values
