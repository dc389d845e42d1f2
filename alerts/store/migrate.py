"""Schema migrations of the store (Alembic), applied when a store is opened and by ``alerts db upgrade``.

Every process that opens a store checks, with one query, that its schema is at :data:`HEAD_REVISION`;
only when it is not (a new store, a store an older version made, a store made before migrations
existed) does it import Alembic and upgrade, inside :func:`~alerts.store.db.schema_lock`, so that
processes starting together (DDP ranks, server replicas) take turns and the first one does the work.

A revision changes the schema in ``alerts/store/migrations/versions/``; :data:`HEAD_REVISION` names the
newest (a test checks it against Alembic's head, and that the migrated schema matches the models).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

HEAD_REVISION = "0006"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


def current_revision(conn: Connection) -> Optional[str]:
    """The store's revision, or None (no migrations applied: a new store, or one made before them)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def is_current(engine: Engine) -> bool:
    """Whether the store's schema is at :data:`HEAD_REVISION` (one cheap query, no lock)."""
    with engine.connect() as conn:
        return current_revision(conn) == HEAD_REVISION


def upgrade(engine: Engine, *, shortcut_when_empty: bool = True) -> tuple[Optional[str], str]:
    """Upgrade the store to the head revision under the schema lock; ``(before, after)``.

    An empty database (no table at all: every test, every first run) gets the models' tables and the
    head revision stamped, without Alembic: the same schema (a test migrates an empty database both
    ways and compares), for a fraction of the time a first ``init()`` would otherwise pay.
    """
    from alerts.store.db import schema_lock

    with schema_lock(engine) as conn:
        before = current_revision(conn)
        if before == HEAD_REVISION:
            return before, HEAD_REVISION
        if shortcut_when_empty and before is None and not inspect(conn).get_table_names():
            _create_at_head(conn)
        else:
            _alembic_upgrade(conn)
        return before, HEAD_REVISION


def _create_at_head(conn: Connection) -> None:
    from alerts.store.models import RunRecord

    RunRecord.metadata.create_all(conn)
    conn.execute(text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL, "
                      f"CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"))
    conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:head)"), {"head": HEAD_REVISION})


def _alembic_upgrade(conn: Connection) -> None:
    from alembic import command  # imported only when there is work: it costs ~0.1 s

    command.upgrade(alembic_config(conn), "head")


def alembic_config(conn: Optional[Connection] = None):
    """Alembic's configuration for the store's migrations, on ``conn`` (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config
