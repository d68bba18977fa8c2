"""lakestack: the lakehouse MLOps reference architecture, self-hosted.

Start with :class:`lakestack.Workspace`.
"""

from lakestack.errors import LakestackError
from lakestack.features import FeatureLookup
from lakestack.tables.expectations import Expectation
from lakestack.workspace import Workspace

__all__ = ["Expectation", "FeatureLookup", "LakestackError", "Workspace"]
__version__ = "0.1.0"
