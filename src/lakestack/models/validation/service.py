"""`ws.models.validate`: run a model version through its checks and gate the challenger alias.

The steps, as the acting principal:
1. resolve the candidate (EXECUTE); in mode `enabled` require MANAGE first, since passing sets
   the challenger alias; tag the version `model_validation_status=PENDING`;
2. in an MLflow run (in the candidate's project experiment): read the data (a table, SELECT,
   its version recorded; or a DataFrame), score the candidate and the current champion on the
   same rows through their feature lookups, compute metrics, run every check;
3. log metrics, a JSON and an HTML report; tag the version PASSED or FAILED, add a summary line
   to its description; in mode `enabled`, and only when it passed, set the challenger alias.

A crash part-way leaves the tag at PENDING, which is what happened. No failed validation, and
no validation in mode `dry_run` or `disabled`, ever moves an alias.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lakestack.catalog.names import Name
from lakestack.errors import InvalidParameter, NotFound, PermissionDenied
from lakestack.features.store import FeatureStore
from lakestack.lineage.service import Lineage
from lakestack.lineage.store import NodeRef
from lakestack.models.tracking import EXPERIMENT_PREFIX, Tracking
from lakestack.models.validation import evaluate, metrics, report, runner
from lakestack.models.validation.checks import (
    CheckResult,
    Comparison,
    CustomCheck,
    MetadataRequirements,
    SliceThreshold,
    Threshold,
)
from lakestack.models.validation.result import RUN_TAG, STATUS_TAG, Mode, ModelScores, ValidationResult
from lakestack.tables.arrow import to_arrow
from lakestack.tables.service import Tables

if TYPE_CHECKING:
    from lakestack.models.registry import ModelRegistry, ModelVersionInfo

DEFAULT_PROJECT = "model-validation"


@dataclass(frozen=True)
class ValidationSpec:
    """Everything a validation checks, parsed and checked before any work starts."""

    label: str
    problem_type: metrics.ProblemType
    thresholds: list[Threshold] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    slices: list[SliceThreshold] = field(default_factory=list)
    custom: list[CustomCheck] = field(default_factory=list)
    metadata: MetadataRequirements = field(default_factory=MetadataRequirements)

    @classmethod
    def build(
        cls,
        label: str,
        problem_type: str,
        thresholds: Sequence[Threshold | str] = (),
        comparisons: Sequence[Comparison | str] = (),
        slices: Sequence[SliceThreshold | str] = (),
        custom_checks: Sequence[CustomCheck | Callable[[Any], Any]] = (),
        metadata: MetadataRequirements | None = None,
    ) -> ValidationSpec:
        kind = metrics.problem_type(problem_type)
        if not isinstance(label, str) or not label:
            raise InvalidParameter("validate needs `label`: the column holding the true values.")
        spec = cls(
            label=label,
            problem_type=kind,
            thresholds=[t if isinstance(t, Threshold) else Threshold.parse(t) for t in _many(thresholds)],
            comparisons=[c if isinstance(c, Comparison) else Comparison.parse(c) for c in _many(comparisons)],
            slices=[s if isinstance(s, SliceThreshold) else SliceThreshold.parse(s) for s in _many(slices)],
            custom=[CustomCheck.of(c) for c in custom_checks],
            metadata=metadata or MetadataRequirements(),
        )
        for name in spec.metric_names():
            metrics.check_metric(name, kind)
        return spec

    def metric_names(self) -> builtins.list[str]:
        names = [t.metric for t in self.thresholds] + [c.metric for c in self.comparisons]
        return names + [s.threshold.metric for s in self.slices]


def _many(items: Any) -> builtins.list[Any]:
    """One check given on its own (`thresholds="roc_auc>=0.7"`) counts as a list of one."""
    return [items] if isinstance(items, str | Threshold | Comparison | SliceThreshold) else list(items)


class ModelValidation:
    """Runs validations for one principal; built by `ws.models.validate`."""

    def __init__(
        self,
        registry: ModelRegistry,
        tables: Tables,
        features: FeatureStore,
        lineage: Lineage,
        tracking: Tracking,
    ) -> None:
        self._registry = registry
        self._tables = tables
        self._features = features
        self._lineage = lineage
        self._tracking = tracking

    def validate(
        self,
        candidate: ModelVersionInfo,
        data: Any,
        spec: ValidationSpec,
        mode: Mode,
        champion_alias: str = "champion",
        challenger_alias: str = "challenger",
        project: str | None = None,
    ) -> ValidationResult:
        """Validate `candidate` (resolved by the caller, who checked EXECUTE, and MANAGE in mode
        enabled) on `data`; see the module docstring."""
        notes: list[str] = []
        recorder = _VersionRecorder(self._registry, candidate, notes)
        if mode == "disabled":
            recorder.tag(STATUS_TAG, "SKIPPED")
            notes.append("Validation is disabled: no checks ran and no alias was set.")
            return ValidationResult(candidate.name, candidate.version, "SKIPPED", mode, [], {}, notes=notes)
        _no_active_run()
        if isinstance(data, str):
            self._check_table(data, spec.label)  # a wrong name or a missing grant leaves no PENDING behind
        recorder.tag(STATUS_TAG, "PENDING", required=mode == "enabled")
        with self._run(candidate, project, mode, data) as run:
            result = self._evaluate(candidate, data, spec, mode, champion_alias, notes)
            result = replace(result, run_id=run.info.run_id)
            # The verdict goes on the version before any alias moves: a crash in between
            # leaves a PASSED version without the alias, never an alias on a PENDING one.
            recorder.tag(STATUS_TAG, result.status)
            recorder.tag(RUN_TAG, run.info.run_id)
            recorder.describe(report.summary_line(result))
            if mode == "enabled" and result.passed:
                self._registry.set_alias(candidate.name, challenger_alias, candidate.version)
                result = replace(result, alias_set=challenger_alias)
            elif mode == "dry_run":
                notes.append(f"Dry run: the '{challenger_alias}' alias was not changed.")
            else:
                notes.append(f"Validation failed: the '{challenger_alias}' alias was not changed.")
            return report.log(run, result)

    # --- steps -----------------------------------------------------------------------------

    def _run(self, candidate: ModelVersionInfo, project: str | None, mode: Mode, data: Any) -> Any:
        tags = {
            "lakestack.validation.model": candidate.name,
            "lakestack.validation.version": str(candidate.version),
            "lakestack.validation.mode": mode,
        }
        if isinstance(data, str):
            tags["lakestack.validation.data"] = data
        return self._tracking.start_run(
            project or self._project_of(candidate),
            run_name=f"validate {candidate.name}/{candidate.version}",
            tags=tags,
        )

    def _project_of(self, candidate: ModelVersionInfo) -> str:
        """The project the candidate was trained in, so its validation runs sit beside it."""
        if not candidate.run_id:
            return DEFAULT_PROJECT
        client = self._registry.client()
        try:
            experiment = client.get_experiment(client.get_run(candidate.run_id).info.experiment_id)
        except Exception:  # the training run was deleted: validation still has a home
            return DEFAULT_PROJECT
        name = str(experiment.name)
        return name[len(EXPERIMENT_PREFIX) :] if name.startswith(EXPERIMENT_PREFIX) else DEFAULT_PROJECT

    def _evaluate(
        self,
        candidate: ModelVersionInfo,
        data: Any,
        spec: ValidationSpec,
        mode: Mode,
        champion_alias: str,
        notes: list[str],
    ) -> ValidationResult:
        rows, data_name, data_version = self._load(data, spec.label)
        info = evaluate.model_info(candidate.uri)
        results = runner.metadata_checks(spec.metadata, candidate, info, rows, self._features)
        try:
            scored = self._score(candidate, info, rows, spec)
        except InvalidParameter as exc:
            # A candidate that cannot predict on the held-out data fails; it does not crash.
            results.append(CheckResult("predict", "metadata", False, detail=exc.message))
            return ValidationResult(
                candidate.name, candidate.version, "FAILED", mode, results, {}, data=data_name,
                data_version=data_version, rows=rows.num_rows, notes=notes,
            )  # fmt: skip
        champion, champion_note = self._champion(candidate, champion_alias, rows, spec)
        if champion_note:
            notes.append(champion_note)
        context = runner.Context(spec, scored[0], scored[1], champion, champion_note, champion_alias)
        results += runner.threshold_checks(context)
        results += runner.comparison_checks(context)
        slice_results, slice_metrics = runner.slice_checks(context)
        results += slice_results
        results += runner.custom_checks(context)
        passed = all(r.passed for r in results)
        return ValidationResult(
            model_name=candidate.name,
            version=candidate.version,
            status="PASSED" if passed else "FAILED",
            mode=mode,
            checks=results,
            metrics=scored[1].metrics,
            champion_version=champion.version if champion else None,
            champion_metrics=champion.metrics if champion else {},
            slice_metrics=slice_metrics,
            data=data_name,
            data_version=data_version,
            rows=rows.num_rows,
            notes=notes,
        )

    def _check_table(self, name: str, label: str) -> None:
        """The data table exists, the caller may read it, and it has the label column."""
        columns = self._tables.get(name).schema.names
        if label not in columns:
            raise InvalidParameter(
                f"Table '{name}' has no label column {label!r}. Columns: {', '.join(columns)}."
            )

    def _load(self, data: Any, label: str) -> tuple[pa.Table, str, int | None]:
        """The evaluation rows; a table is read as the caller (SELECT) at its current version."""
        if isinstance(data, str):
            version = self._tables.get(data).version
            rows = self._tables.read(data, version=version)
            name, described = str(Name.parse(data, 3)), data
        else:
            rows = to_arrow(data)
            name, described, version = "", f"a DataFrame of {len(data)} rows", None
        if label not in rows.column_names:
            raise InvalidParameter(
                f"The evaluation data ({described}) has no label column {label!r}. "
                f"Columns: {', '.join(rows.column_names)}."
            )
        if rows.num_rows == 0:
            raise InvalidParameter(f"The evaluation data ({described}) has no rows.")
        return rows, name or described, version

    def _score(
        self, version: ModelVersionInfo, info: Any, rows: pa.Table, spec: ValidationSpec
    ) -> tuple[pa.Table, ModelScores]:
        self._lineage.used(NodeRef("model", version.name, version.version))
        classification = spec.problem_type == "classification"
        scored = evaluate.score(self._features, version.uri, info, rows, spec.label, classification)
        truth = scored.rows.column(spec.label).to_numpy(zero_copy_only=False)
        found = metrics.compute(spec.problem_type, truth, scored.predictions, scored.scores, scored.classes)
        return scored.rows, ModelScores(
            version.name, version.version, scored.predictions, scored.scores, scored.classes, found
        )

    def _champion(
        self, candidate: ModelVersionInfo, alias: str, rows: pa.Table, spec: ValidationSpec
    ) -> tuple[ModelScores | None, str]:
        """The champion's scores on the same rows, or why there are none."""
        try:
            champion = self._registry.resolve(f"models:/{candidate.name}@{alias}", "models.validate")
        except NotFound:
            return (
                None,
                f"No '{alias}' version of {candidate.name} yet: the comparison with a champion was skipped.",
            )
        if champion.version == candidate.version:
            return None, f"Version {candidate.version} is itself the '{alias}': the comparison was skipped."
        info = evaluate.model_info(champion.uri)
        try:
            return self._score(champion, info, rows, spec)[1], ""
        except (InvalidParameter, PermissionDenied, NotFound) as exc:
            return None, f"ERROR: the '{alias}' (version {champion.version}) could not be scored: {exc}"


def _no_active_run() -> None:
    import mlflow

    if mlflow.active_run() is not None:
        raise InvalidParameter(
            "ws.models.validate starts its own MLflow run: call it outside `with ws.tracking.start_run(...)`."
        )


class _VersionRecorder:
    """Writes status tags and the summary onto the version (MANAGE). In dry_run a caller
    without MANAGE still gets the evaluation and report; the result notes what was not written."""

    def __init__(self, registry: ModelRegistry, version: ModelVersionInfo, notes: list[str]) -> None:
        self._registry = registry
        self._version = version
        self._notes = notes
        self._allowed = True

    def tag(self, key: str, value: str, required: bool = True) -> None:
        if not self._allowed:
            return
        try:
            self._registry.set_tag(self._version.name, self._version.version, key, value)
        except PermissionDenied:
            if required:
                raise
            self._allowed = False
            self._notes.append(
                f"The result was not recorded on {self._version.uri} (tags, description): that needs MANAGE."
            )

    def describe(self, line: str) -> None:
        if not self._allowed:
            return
        kept = [
            text for text in (self._version.description or "").splitlines() if not report.is_summary(text)
        ]
        self._registry.set_description(self._version.name, self._version.version, "\n".join([*kept, line]))
