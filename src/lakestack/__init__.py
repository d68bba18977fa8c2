"""lakestack: the lakehouse MLOps reference architecture, self-hosted.

Start with :class:`lakestack.Workspace`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lakestack.errors import LakestackError

if TYPE_CHECKING:
    from lakestack.features import FeatureLookup
    from lakestack.tables.expectations import Expectation
    from lakestack.workspace import Workspace

__all__ = ["Expectation", "FeatureLookup", "LakestackError", "Workspace"]
__version__ = "0.1.0"

# Imported on first use: a job task process imports `lakestack.jobs...` and must not pay for
# pyarrow, pandas and SQLAlchemy before running a task that needs none of them.
_LAZY = {
    "Workspace": "lakestack.workspace",
    "FeatureLookup": "lakestack.features",
    "Expectation": "lakestack.tables.expectations",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'lakestack' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
