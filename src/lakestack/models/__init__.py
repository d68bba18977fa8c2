"""MLflow on the workspace: tracking runs (and, next, feature-aware models and the registry)."""
