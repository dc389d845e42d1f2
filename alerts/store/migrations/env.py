"""Alembic's environment: migrations run on the connection :mod:`alerts.store.migrate` hands over
(already inside the schema lock's transaction), never on a URL of their own."""

from __future__ import annotations

from alembic import context
from alerts.store.models import RunRecord

target_metadata = RunRecord.metadata  # every table of alerts.store.models (SQLModel's one metadata)

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the store's migrations with `alerts db upgrade` (alerts.store.migrate.upgrade)")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
