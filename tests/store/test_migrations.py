"""Schema migrations: a new store, a store made before migrations existed, and `alerts db upgrade`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from alerts.store import migrate
from alerts.store.db import Store
from conftest import REPO


def test_head_revision_constant_matches_the_scripts():
    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert heads == [migrate.HEAD_REVISION]


@pytest.mark.parametrize("shortcut", [True, False], ids=["created", "migrated"])
def test_a_new_store_is_migrated_to_a_schema_that_matches_the_models(empty_database_url, shortcut):
    store = Store(empty_database_url, migrate_schema=False)
    try:
        assert migrate.upgrade(store.engine, shortcut_when_empty=shortcut) == (None, migrate.HEAD_REVISION)
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.HEAD_REVISION
            differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                           SQLModel.metadata)
        # A model changed without a revision shows here: add one in alerts/store/migrations/versions.
        assert differences == []
    finally:
        store.dispose()


OLD_RUNS = """CREATE TABLE runs (id VARCHAR(64) PRIMARY KEY, owner VARCHAR NOT NULL, project VARCHAR NOT NULL,
 name VARCHAR NOT NULL, "group" VARCHAR, job_type VARCHAR, tags TEXT NOT NULL, notes TEXT, config TEXT NOT NULL,
 summary TEXT NOT NULL, state VARCHAR NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
 heartbeat_at FLOAT NOT NULL, finished_at FLOAT, exit_code INTEGER, error_type VARCHAR, error_text TEXT,
 last_step INTEGER NOT NULL)"""
OLD_CHUNKS = """CREATE TABLE history_chunks (id {serial} PRIMARY KEY, run_id VARCHAR NOT NULL REFERENCES runs (id),
 first_step INTEGER NOT NULL, last_step INTEGER NOT NULL, n_rows INTEGER NOT NULL, last_time FLOAT NOT NULL,
 data {blob} NOT NULL)"""


def _make_pre_migration_store(url: str) -> None:
    """Two tables as an early version of the embedded mode made them: 32-bit steps, no host/pid
    columns, no index, none of the later tables, no alembic_version; with a run and its points."""
    engine = create_engine(url)
    pg = engine.dialect.name == "postgresql"
    blob, serial = ("BYTEA", "SERIAL") if pg else ("BLOB", "INTEGER")
    with engine.begin() as conn:
        conn.execute(text(OLD_RUNS))
        conn.execute(text(OLD_CHUNKS.format(blob=blob, serial=serial)))
        conn.execute(text("INSERT INTO runs VALUES ('old1', 'alice', 'p', 'old-run', NULL, NULL, '[]', NULL, '{}',"
                          " '{}', 'finished', 1.0, 2.0, 2.0, 2.0, 0, NULL, NULL, 41)"))
        conn.execute(text("INSERT INTO history_chunks (run_id, first_step, last_step, n_rows, last_time, data)"
                          " VALUES ('old1', 0, 41, 42, 2.0, :data)"), {"data": b"\x90"})
    engine.dispose()


def test_a_store_made_before_migrations_is_adopted_with_its_rows(empty_database_url):
    _make_pre_migration_store(empty_database_url)
    store = Store(empty_database_url)  # opening it upgrades it
    try:
        run = store.get_run("old1")
        assert run is not None and run.name == "old-run" and run.last_step == 41 and run.host is None
        inspector = inspect(store.engine)
        assert {"deliveries", "delivery_state", "leases", "users", "api_keys", "silences"} <= set(
            inspector.get_table_names())
        assert "ix_runs_owner" in {i["name"] for i in inspector.get_indexes("runs")}
        # Steps past 2**31: refused by the old PostgreSQL columns, stored now.
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE runs SET last_step = :s, host = 'h', pid = 7 WHERE id = 'old1'"),
                         {"s": 2**40})
        assert store.get_run("old1").last_step == 2**40
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.HEAD_REVISION
    finally:
        store.dispose()


def test_alerts_db_upgrade_says_what_it_did(tmp_path):
    env = {**os.environ, "ALERTS_DIR": str(tmp_path / "s"), "PYTHONPATH": str(REPO)}
    env.pop("ALERTS_DATABASE_URL", None)
    (tmp_path / "s").mkdir()
    _make_pre_migration_store(f"sqlite:///{tmp_path / 's' / 'alerts.db'}")
    first = subprocess.run([sys.executable, "-m", "alerts", "db", "upgrade"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert f"made before migrations -> {migrate.HEAD_REVISION}" in first.stdout
    again = subprocess.run([sys.executable, "-m", "alerts", "db", "upgrade"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 0 and "already at" in again.stdout
