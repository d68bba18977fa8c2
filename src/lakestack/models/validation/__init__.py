"""Model validation: checks a registered model version must pass before it may become challenger."""
