"""What a validation found: per-model scores, the evaluation custom checks see, and the result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa

from lakestack.models.validation.checks import CheckResult

Mode = Literal["disabled", "dry_run", "enabled"]
MODES: tuple[Mode, ...] = ("disabled", "dry_run", "enabled")
STATUS_TAG = "model_validation_status"
RUN_TAG = "model_validation_run_id"


@dataclass(frozen=True)
class ModelScores:
    """One model version's predictions on the evaluation rows, and its metrics."""

    name: str
    version: int
    predictions: np.ndarray = field(repr=False)
    scores: np.ndarray | None = field(repr=False)  # class probabilities, when the model has them
    classes: list[Any] | None
    metrics: dict[str, float]

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class Evaluation:
    """What a custom check is given: the evaluation rows (with looked-up features and the
    label), and the candidate's and champion's predictions and metrics on them."""

    data: pa.Table = field(repr=False)
    label: str
    problem_type: str
    candidate: ModelScores
    champion: ModelScores | None

    @property
    def y_true(self) -> np.ndarray:
        return np.asarray(self.data.column(self.label).to_numpy(zero_copy_only=False))

    def frame(self) -> Any:
        """The rows as a pandas DataFrame with `prediction` (and `champion_prediction`) columns."""
        frame = self.data.to_pandas()
        frame["prediction"] = self.candidate.predictions
        if self.champion is not None:
            frame["champion_prediction"] = self.champion.predictions
        return frame


@dataclass(frozen=True)
class ValidationResult:
    """The outcome of `ws.models.validate`: status PASSED, FAILED or SKIPPED (mode disabled).

    `passed` is True only for PASSED. `alias_set` names the alias the version received (only
    in mode enabled, only when it passed). `notes` explain skipped comparisons and anything
    not recorded.
    """

    model_name: str
    version: int
    status: str
    mode: Mode
    checks: list[CheckResult]
    metrics: dict[str, float]
    champion_version: int | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)
    slice_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    data: str | None = None
    data_version: int | None = None
    rows: int = 0
    run_id: str | None = None
    report_json_uri: str | None = None
    report_html_uri: str | None = None
    alias_set: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "PASSED"

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (the JSON report, `--json`, task values)."""
        out = asdict(self)
        out["passed"] = self.passed
        out["model_uri"] = self.model_uri
        return out


def check_mode(mode: str) -> Mode:
    """`mode` if it is disabled, dry_run or enabled; otherwise an error listing them."""
    if mode not in MODES:
        from lakestack.errors import InvalidParameter

        raise InvalidParameter(f"Unknown validation mode {mode!r}: use disabled, dry_run or enabled.")
    return mode
