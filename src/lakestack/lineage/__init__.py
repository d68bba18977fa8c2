"""Lineage: which table versions, code and runs made each table version and model version."""
