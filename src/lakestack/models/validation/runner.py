"""Each kind of check, run against the evaluation: one `CheckResult` per verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lakestack.errors import InvalidParameter, LakestackError
from lakestack.features.store import FeatureStore
from lakestack.models.validation import evaluate, metrics, report, slices
from lakestack.models.validation.checks import CheckResult, Comparison, MetadataRequirements, outcome
from lakestack.models.validation.result import Evaluation, ModelScores

if TYPE_CHECKING:
    from lakestack.models.registry import ModelVersionInfo
    from lakestack.models.validation.service import ValidationSpec


@dataclass(frozen=True)
class Context:
    """The evaluation the checks look at, and why there is no champion if there is none."""

    spec: ValidationSpec
    rows: pa.Table
    candidate: ModelScores
    champion: ModelScores | None
    champion_note: str
    champion_alias: str

    def evaluation(self) -> Evaluation:
        return Evaluation(self.rows, self.spec.label, self.spec.problem_type, self.candidate, self.champion)


# --- (a) format and metadata -------------------------------------------------------------


def metadata_checks(
    wanted: MetadataRequirements,
    version: ModelVersionInfo,
    info: Any,
    rows: pa.Table,
    features: FeatureStore,
) -> list[CheckResult]:
    """Signature, input example, description, required tags and the feature spec."""
    found: list[CheckResult] = []
    if wanted.signature:
        inputs = evaluate.signature_inputs(info)
        found.append(
            CheckResult(
                "signature",
                "metadata",
                info.signature is not None,
                detail=f"inputs: {', '.join(inputs) or '(unnamed)'}"
                if info.signature is not None
                else "The model was logged without a signature: log it with an input_example "
                "(or a training set) so MLflow infers one.",
            )
        )
    if wanted.input_example:
        present = getattr(info, "saved_input_example_info", None) is not None
        found.append(
            CheckResult(
                "input_example",
                "metadata",
                present,
                detail="" if present else "The model was logged without an input_example.",
            )
        )
    if wanted.description:
        text = "\n".join(
            line for line in (version.description or "").splitlines() if not report.is_summary(line)
        ).strip()
        found.append(
            CheckResult(
                "description",
                "metadata",
                bool(text),
                detail=""
                if text
                else f"Version {version.version} has no description: set one with "
                f"ws.models.set_description('{version.name}', {version.version}, '...').",
            )
        )
    for key in wanted.tags:
        value = version.tags.get(key)
        found.append(
            CheckResult(
                f"tag:{key}",
                "metadata",
                bool(value),
                detail=f"{key}={value}"
                if value
                else f"Version {version.version} lacks required tag '{key}': "
                f"lakestack models tag {version.name} {version.version} {key} VALUE",
            )
        )
    spec = evaluate.feature_spec(info)
    if wanted.feature_spec and spec is not None:
        found.extend(_feature_spec_checks(spec, rows, features))
    return found


def _feature_spec_checks(spec: dict[str, Any], rows: pa.Table, features: FeatureStore) -> list[CheckResult]:
    """Each lookup in the spec must still match its feature table, and the data must carry its keys."""
    found = []
    for item in spec.get("lookups", []):
        table_name = item["table_name"]
        problems: list[str] = []
        try:
            table = features.get_table(table_name)
        except LakestackError as exc:
            problems.append(exc.message)
        else:
            if list(item["primary_keys"]) != table.lookup_keys:
                problems.append(
                    f"its keys are now {table.lookup_keys}, the model was trained with {item['primary_keys']}"
                )
            if item.get("timestamp_key") != table.timestamp_key:
                problems.append(
                    f"its timestamp key is now {table.timestamp_key!r}, was {item.get('timestamp_key')!r}"
                )
            gone = [f for f in item["features"] if f not in table.features]
            if gone:
                problems.append(f"feature(s) {', '.join(gone)} no longer exist in it")
        missing_keys = [k for k in item["lookup_key"] if k not in rows.column_names]
        if missing_keys:
            problems.append(f"the evaluation data lacks lookup key column(s) {', '.join(missing_keys)}")
        found.append(
            CheckResult(
                f"feature_spec:{table_name}",
                "metadata",
                not problems,
                detail="; ".join(problems)
                or f"features {', '.join(item['features'])} (trained on version {item.get('table_version')})",
            )
        )
    return found


# --- (b) thresholds, (c) comparison ------------------------------------------------------


def _value(found: dict[str, float], metric: str) -> float | None:
    value = found.get(metric)
    return None if value is None or not math.isfinite(value) else value


def threshold_checks(context: Context) -> list[CheckResult]:
    """Absolute bounds on the candidate's metrics."""
    results = []
    for threshold in context.spec.thresholds:
        value = _value(context.candidate.metrics, threshold.metric)
        if value is None:
            results.append(
                CheckResult(
                    f"threshold:{threshold.metric}",
                    "threshold",
                    False,
                    threshold=str(threshold),
                    detail=_undefined(threshold.metric),
                )
            )
            continue
        results.append(
            CheckResult(
                f"threshold:{threshold.metric}",
                "threshold",
                threshold.holds(value),
                value=value,
                threshold=str(threshold),
                detail=f"{threshold.metric} = {value:.4g}",
            )
        )
    return results


def _undefined(metric: str) -> str:
    if metric in ("roc_auc", "log_loss"):
        return (
            f"{metric} could not be computed: it needs class probabilities (a model with predict_proba) "
            "and, for roc_auc, both classes in the data."
        )
    return f"{metric} could not be computed on this data."


def comparison_checks(context: Context) -> list[CheckResult]:
    """The candidate against the champion (or a fixed baseline when there is no champion)."""
    results = []
    for comparison in context.spec.comparisons:
        name = f"comparison:{comparison.metric}"
        value = _value(context.candidate.metrics, comparison.metric)
        if context.champion is not None:
            reference, against = (
                _value(context.champion.metrics, comparison.metric),
                (f"{context.champion_alias} (version {context.champion.version})"),
            )
        elif comparison.baseline is not None:
            reference, against = comparison.baseline, "the baseline"
        elif context.champion_note.startswith("ERROR"):
            results.append(
                CheckResult(name, "comparison", False, value, str(comparison), context.champion_note)
            )
            continue
        else:
            results.append(
                CheckResult(
                    name, "comparison", True, value, str(comparison), context.champion_note, skipped=True
                )
            )
            continue
        if value is None or reference is None:
            results.append(
                CheckResult(name, "comparison", False, value, str(comparison), _undefined(comparison.metric))
            )
            continue
        passed, detail = _improves(comparison, value, reference)
        results.append(
            CheckResult(name, "comparison", passed, value, str(comparison), f"{detail} vs {against}")
        )
    return results


def _improves(comparison: Comparison, value: float, reference: float) -> tuple[bool, str]:
    better = (
        comparison.greater_is_better
        if comparison.greater_is_better is not None
        else metrics.greater_is_better(comparison.metric)
    )
    change = value - reference if better else reference - value  # positive = an improvement
    passed = change >= (comparison.min_absolute or 0.0)
    if comparison.min_relative is not None:
        relative = change / abs(reference) if reference else (math.inf if change > 0 else 0.0)
        passed = passed and relative >= comparison.min_relative
    direction = "higher" if better else "lower"
    return passed, (
        f"{comparison.metric} {value:.4g} against {reference:.4g}: an improvement of {change:+.4g} "
        f"({direction} is better)"
    )


# --- (d) slices ----------------------------------------------------------------------------


def slice_checks(context: Context) -> tuple[list[CheckResult], dict[str, dict[str, float]]]:
    """Each slice threshold, per slice; also the candidate's metrics on every slice."""
    results: list[CheckResult] = []
    per_slice: dict[str, dict[str, float]] = {}
    truth = np.asarray(context.rows.column(context.spec.label).to_numpy(zero_copy_only=False))
    candidate = context.candidate
    for item in context.spec.slices:
        try:
            parts = slices.evaluate(item.where, context.rows)
        except InvalidParameter as exc:  # a slice that cannot be evaluated fails its check
            name = f"slice:{item.threshold.metric}[{item.where}]"
            results.append(
                CheckResult(name, "slice", False, threshold=str(item.threshold), detail=exc.message)
            )
            continue
        for part in parts:
            mask = part.mask
            count = int(mask.sum())
            if part.label not in per_slice:
                scores = None if candidate.scores is None else candidate.scores[mask]
                per_slice[part.label] = {
                    "rows": float(count),
                    **metrics.compute(
                        context.spec.problem_type,
                        truth[mask],
                        candidate.predictions[mask],
                        scores,
                        candidate.classes,
                    ),
                }
            name = f"slice:{item.threshold.metric}[{part.label}]"
            if count < item.min_rows:
                results.append(
                    CheckResult(
                        name,
                        "slice",
                        False,
                        threshold=str(item.threshold),
                        detail=f"the slice has {count} row(s), fewer than the {item.min_rows} required",
                    )
                )
                continue
            value = _value(per_slice[part.label], item.threshold.metric)
            results.append(
                CheckResult(
                    name,
                    "slice",
                    value is not None and item.threshold.holds(value),
                    value=value,
                    threshold=str(item.threshold),
                    detail=f"{count} rows; {item.threshold.metric} = {value:.4g}"
                    if value is not None
                    else f"{count} rows; {_undefined(item.threshold.metric)}",
                )
            )
    return results, per_slice


# --- (e) custom ----------------------------------------------------------------------------


def custom_checks(context: Context) -> list[CheckResult]:
    """Run each custom callable; an exception or a malformed answer fails it, with the reason."""
    results = []
    evaluation = context.evaluation()
    for check in context.spec.custom:
        try:
            found = outcome(check.fn(evaluation))
        except Exception as exc:  # a broken check must fail the validation, not crash it
            results.append(
                CheckResult(check.name, "custom", False, detail=f"raised {type(exc).__name__}: {exc}")
            )
            continue
        results.append(CheckResult(check.name, "custom", found.passed, found.value, detail=found.detail))
    return results
