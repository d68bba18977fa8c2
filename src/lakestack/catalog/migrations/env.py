"""Alembic environment: always run programmatically by `lakestack.catalog.metastore`."""

from alembic import context

from lakestack.catalog.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
