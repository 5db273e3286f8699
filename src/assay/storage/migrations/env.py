"""Alembic environment: runs on the connection that ``assay.storage.db.Database.migrate`` passes in."""

from __future__ import annotations

from alembic import context

from assay.storage.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached when someone runs the alembic CLI directly
    raise RuntimeError("run migrations through `assay admin migrate` (or `assay serve`)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
