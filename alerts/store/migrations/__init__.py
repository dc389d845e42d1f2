"""Alembic migrations of the store (see :mod:`alerts.store.migrate`). Revisions live in ``versions/``."""
