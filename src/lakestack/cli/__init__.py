"""The `lakestack` command line: presentation only, every action goes through the Workspace."""
