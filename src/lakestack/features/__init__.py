"""Feature tables and point-in-time training sets (`ws.features`)."""

from lakestack.features.store import FeatureStore, FeatureTable
from lakestack.features.training import FeatureLookup, TrainingSet

__all__ = ["FeatureLookup", "FeatureStore", "FeatureTable", "TrainingSet"]
