"""Alembic environment: always run against the connection `hearth.db.migrate` hands in."""

from alembic import context

from hearth.db.base import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
