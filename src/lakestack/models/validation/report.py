"""The validation report: metrics and parameters on the MLflow run, a JSON report for programs
and a self-contained HTML report for people (no scripts, no external assets, every value escaped)."""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from lakestack.models.validation.result import ValidationResult

JSON_ARTIFACT = "validation/report.json"
HTML_ARTIFACT = "validation/report.html"
_UNSAFE_METRIC = re.compile(r"[^A-Za-z0-9_\-. /]+")
_SUMMARY = re.compile(r"Validation (PASSED|FAILED) \(\d+/\d+ checks")


def is_summary(line: str) -> bool:
    """Whether a description line is a summary a validation wrote (replaced by the next one)."""
    return _SUMMARY.match(line) is not None


def summary_line(result: ValidationResult) -> str:
    """One line for the version's description, e.g. `Validation PASSED (5/5 checks, enabled) ...`."""
    passed = sum(1 for c in result.checks if c.passed)
    where = result.data if result.data_version is None else f"{result.data} v{result.data_version}"
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Validation {result.status} ({passed}/{len(result.checks)} checks, mode {result.mode}) "
        f"on {where}, {result.rows} rows, {when}; MLflow run {result.run_id}"
    )


def _metric_name(text: str) -> str:
    return _UNSAFE_METRIC.sub("_", text).strip("_")[:200]


def log(run: Any, result: ValidationResult) -> ValidationResult:
    """Log metrics, parameters and both reports to the active MLflow `run`; returns the result
    with the reports' artifact URIs filled in."""
    import mlflow

    params = {
        "model_uri": result.model_uri,
        "mode": result.mode,
        "data": result.data or "",
        "data_version": "" if result.data_version is None else str(result.data_version),
        "champion_version": "" if result.champion_version is None else str(result.champion_version),
        "rows": str(result.rows),
    }
    mlflow.log_params(params)
    logged: dict[str, float] = {"validation_passed": 1.0 if result.passed else 0.0}
    logged.update({k: v for k, v in result.metrics.items()})
    logged.update({f"champion_{k}": v for k, v in result.champion_metrics.items()})
    for label, found in result.slice_metrics.items():
        logged.update({_metric_name(f"slice {label} {k}"): v for k, v in found.items()})
    mlflow.log_metrics(logged)
    mlflow.set_tag("lakestack.validation.status", result.status)
    base = str(run.info.artifact_uri).rstrip("/")
    done = replace(
        result, report_json_uri=f"{base}/{JSON_ARTIFACT}", report_html_uri=f"{base}/{HTML_ARTIFACT}"
    )
    mlflow.log_text(to_json(done), JSON_ARTIFACT)
    mlflow.log_text(to_html(done), HTML_ARTIFACT)
    return done


def to_json(result: ValidationResult) -> str:
    """The result as indented JSON (what `--json` prints too); undefined metrics become null."""
    return json.dumps(_finite(result.to_dict()), indent=2, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _e(value: Any) -> str:
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    return html.escape("" if value is None else str(value), quote=True)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}
td,th{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}.PASSED,.pass{color:#1a7f37;font-weight:600}
.FAILED,.fail{color:#cf222e;font-weight:600}.SKIPPED,.skip{color:#9a6700;font-weight:600}
"""


def to_html(result: ValidationResult) -> str:
    """A readable, self-contained page: verdict, checks, metrics side by side, slices, notes."""
    rows = []
    for check in result.checks:
        verdict = "skipped" if check.skipped else ("pass" if check.passed else "fail")
        css = {"skipped": "skip", "pass": "pass", "fail": "fail"}[verdict]
        rows.append(
            f'<tr><td>{_e(check.name)}</td><td>{_e(check.kind)}</td><td class="{css}">{verdict}</td>'
            f"<td>{_e(check.value)}</td><td>{_e(check.threshold)}</td><td>{_e(check.detail)}</td></tr>"
        )
    names = sorted(set(result.metrics) | set(result.champion_metrics))
    metric_rows = [
        f"<tr><td>{_e(n)}</td><td>{_e(result.metrics.get(n))}</td><td>{_e(result.champion_metrics.get(n))}</td></tr>"
        for n in names
    ]
    slice_names = sorted({k for found in result.slice_metrics.values() for k in found})
    slice_rows = [
        "<tr><td>"
        + _e(label)
        + "</td>"
        + "".join(f"<td>{_e(found.get(k))}</td>" for k in slice_names)
        + "</tr>"
        for label, found in result.slice_metrics.items()
    ]
    champion = "none" if result.champion_version is None else f"version {result.champion_version}"
    data = result.data if result.data_version is None else f"{result.data} (version {result.data_version})"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Validation of {_e(result.model_uri)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Validation of {_e(result.model_uri)}: "
        f'<span class="{_e(result.status)}">{_e(result.status)}</span></h1>',
        "<table>",
        f"<tr><th>mode</th><td>{_e(result.mode)}</td></tr>",
        f"<tr><th>data</th><td>{_e(data)}, {_e(result.rows)} rows</td></tr>",
        f"<tr><th>champion</th><td>{_e(champion)}</td></tr>",
        f"<tr><th>alias set</th><td>{_e(result.alias_set or 'none')}</td></tr>",
        f"<tr><th>MLflow run</th><td>{_e(result.run_id)}</td></tr>",
        "</table>",
        "<h2>Checks</h2><table><tr><th>check</th><th>kind</th><th>verdict</th><th>value</th>"
        "<th>threshold</th><th>detail</th></tr>",
        *rows,
        "</table>",
        "<h2>Metrics</h2><table><tr><th>metric</th><th>candidate</th><th>champion</th></tr>",
        *metric_rows,
        "</table>",
    ]
    if slice_rows:
        header = "".join(f"<th>{_e(k)}</th>" for k in slice_names)
        parts += [
            "<h2>Slices (candidate)</h2><table><tr><th>slice</th>" + header + "</tr>",
            *slice_rows,
            "</table>",
        ]
    if result.notes:
        parts += ["<h2>Notes</h2><ul>", *(f"<li>{_e(n)}</li>" for n in result.notes), "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)
