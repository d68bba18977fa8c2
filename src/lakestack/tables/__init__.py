"""Governed Delta tables: IO, merges with retry, expectations, SQL."""
