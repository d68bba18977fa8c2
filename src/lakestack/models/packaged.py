"""The pyfunc wrapper that ships a model together with its feature spec.

Imported only when a model is logged or loaded (it needs MLflow). Loaded with plain
`mlflow.pyfunc.load_model`, it expects the feature columns it was trained on, in any order,
extra columns ignored; `ws.models.score_batch` looks those features up from keys first.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd
from mlflow.pyfunc import PythonModel


class FeatureSpecModel(PythonModel):
    def __init__(self, feature_columns: list[str]) -> None:
        self.feature_columns = feature_columns

    def load_context(self, context: Any) -> None:
        self._inner = mlflow.pyfunc.load_model(context.artifacts["inner"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        missing = [c for c in self.feature_columns if c not in model_input.columns]
        if missing:
            raise ValueError(
                f"Missing feature column(s) {', '.join(missing)}: score with ws.models.score_batch."
            )
        return self._inner.predict(model_input[self.feature_columns])
