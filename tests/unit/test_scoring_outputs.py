"""How model outputs become the `prediction` column, and which change-feed rows get scored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from lakestack.models.scoring import prediction_array
from lakestack.models.streaming import _newest_per_key


def test_scalars_stay_scalars_and_probabilities_become_one_list_per_row() -> None:
    assert prediction_array(np.array([0.25, 0.75])).to_pylist() == [0.25, 0.75]
    assert prediction_array(pd.Series([1, 0])).to_pylist() == [1, 0]
    assert prediction_array(np.array([[0.5], [0.1]])).to_pylist() == [0.5, 0.1]  # one column: a scalar
    probabilities = prediction_array(np.array([[0.9, 0.1], [0.2, 0.8]]))
    assert probabilities.type == pa.list_(pa.float64(), 2)
    assert probabilities.to_pylist() == [[0.9, 0.1], [0.2, 0.8]]


def test_a_dataframe_of_outputs_becomes_a_struct_per_row() -> None:
    frame = pd.DataFrame({"label": ["a", "b"], "score": [0.9, 0.6]})
    assert prediction_array(frame).to_pylist() == [{"label": "a", "score": 0.9}, {"label": "b", "score": 0.6}]
    assert prediction_array(frame[["score"]]).to_pylist() == [0.9, 0.6]


def test_each_changed_key_is_scored_once_on_its_newest_image() -> None:
    changes = pa.table(
        {
            "id": [1, 2, 1, 3, 1],
            "x": [10.0, 20.0, 11.0, 30.0, 12.0],
            "_commit_version": [1, 1, 2, 2, 3],
        }
    )
    newest = _newest_per_key(changes, ["id"]).sort_by("id")
    assert newest.column("id").to_pylist() == [1, 2, 3]
    assert newest.column("x").to_pylist() == [12.0, 20.0, 30.0]
