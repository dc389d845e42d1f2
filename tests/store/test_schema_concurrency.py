"""Processes that start together on an empty database all get a working store.

Four real child interpreters wait on their stdin; the test writes each round's store (a fresh
SQLite folder, or a fresh empty PostgreSQL schema) to all four at once, so that every one of them
calls ``init()`` on a database that has no tables yet, and each says whether its run was stored.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from conftest import POSTGRES_URL

CHILDREN = 4
ROUNDS = 6

CHILD = """
    import json, os, sys
    import alerts

    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        if job.get("url"):
            os.environ["ALERTS_DATABASE_URL"] = job["url"]
        os.environ["ALERTS_DIR"] = job["dir"]  # the store is ALERTS_DIR's (init(dir=) does not pick it)
        try:
            run = alerts.init(project="schema", id=job["run_id"])
            run.log({"x": 1.0})
            run.finish()
            print("ok", flush=True)
        except Exception as exc:
            print(f"error {type(exc).__name__}: {str(exc).splitlines()[0]}", flush=True)
"""


def start_children(spawn):
    children = [spawn(CHILD) for _ in range(CHILDREN)]
    for child in children:
        child.expect("ready")
    return children


def run_round(children, tmp_path, round_no: int, url: str | None) -> list[str]:
    """Give every child the same fresh store at once; their answers, in child order."""
    folder = tmp_path / f"round{round_no}"
    for index, child in enumerate(children):
        child.send(json.dumps({"dir": str(folder), "url": url, "run_id": f"r{round_no}-{index}"}) + "\n")
    return [child.next_line() for child in children]


def stored_runs(url: str) -> list[str]:
    from alerts.store.db import Store

    store = Store(url)
    try:
        return sorted(run.id for run in store.find_runs(project="schema"))
    finally:
        store.dispose()


def test_processes_starting_together_on_a_fresh_sqlite_store(spawn, tmp_path):
    children = start_children(spawn)
    for round_no in range(ROUNDS):
        answers = run_round(children, tmp_path, round_no, None)
        assert answers == ["ok"] * CHILDREN, f"round {round_no}: {answers}"
        url = f"sqlite:///{tmp_path / f'round{round_no}' / 'alerts.db'}"
        assert stored_runs(url) == [f"r{round_no}-{i}" for i in range(CHILDREN)]


@pytest.fixture
def fresh_pg_schemas():
    """``new()`` makes an empty PostgreSQL schema and returns a URL whose search_path is it; every
    schema is dropped afterwards."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect():
            pass
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    made: list[str] = []

    def new() -> str:
        schema = f"alerts_race_{uuid.uuid4().hex[:8]}"
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        made.append(schema)
        return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"

    yield new
    with engine.begin() as conn:
        for schema in made:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def test_processes_starting_together_on_an_empty_postgresql_schema(spawn, tmp_path, fresh_pg_schemas):
    # Before the schema lock, 2-4 processes creating tables at once failed out of init() with
    # IntegrityError (pg_type_typname_nsp_index) or "relation already exists".
    children = start_children(spawn)
    for round_no in range(ROUNDS):
        url = fresh_pg_schemas()
        answers = run_round(children, tmp_path, round_no, url)
        assert answers == ["ok"] * CHILDREN, f"round {round_no}: {answers}"
        assert stored_runs(url) == [f"r{round_no}-{i}" for i in range(CHILDREN)]


def test_opening_an_existing_store_takes_no_write_lock(tmp_path, monkeypatch):
    """Another program holding the write lock (a long transaction, `sqlite3` open in a shell) must not
    make init() fail: the tables are there, so opening the store needs no lock at all."""
    import sqlite3

    from alerts.store import db

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    db.Store(url).dispose()  # the tables exist
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)  # give up fast instead of after 30 s
    holder = sqlite3.connect(tmp_path / "alerts.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        store = db.Store(url)  # raised "database is locked" when schema creation always locked
        assert store.get_run("nope") is None  # and reads still work beside the writer
        store.dispose()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_opening_a_new_store_waits_while_another_process_switches_it_to_wal(tmp_path):
    """The moment the CI run failed at, held still: another process has the brand-new file's write
    lock (it is switching the file to WAL, or creating the tables) just as this one opens the store.
    Opening must wait for it, not fail at once with "database is locked" (``PRAGMA journal_mode=WAL``
    on a file not yet in WAL mode reads, then writes, and SQLite answers that upgrade SQLITE_BUSY
    without calling the busy handler)."""
    import logging
    import sqlite3
    import threading

    from alerts.store import db

    path = tmp_path / "alerts.db"
    holder = sqlite3.connect(path, isolation_level=None)  # like a second process: its own connection
    holder.execute("BEGIN IMMEDIATE")  # the write lock of the new, empty, not yet WAL file
    settled = threading.Event()  # the opening failed or succeeded, or it waits for the lock
    outcome: dict = {}

    class WaitSeen(logging.Handler):
        def emit(self, record):
            if "not yet in WAL mode: waiting" in record.getMessage():
                settled.set()

    def open_store():
        try:
            outcome["store"] = db.Store(f"sqlite:///{path}")
        except Exception as exc:  # noqa: BLE001 - the test reports it
            outcome["error"] = exc
        settled.set()

    alerts_logger = logging.getLogger("alerts")
    handler, level = WaitSeen(logging.DEBUG), alerts_logger.level
    alerts_logger.addHandler(handler)
    alerts_logger.setLevel(logging.DEBUG)
    opener = threading.Thread(target=open_store)
    try:
        opener.start()
        assert settled.wait(60), "Store() neither returned nor waited"
        assert "error" not in outcome, f"opening failed while another connection held the lock: {outcome.get('error')}"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        opener.join(60)
        alerts_logger.removeHandler(handler)
        alerts_logger.setLevel(level)
    assert "error" not in outcome, f"opening failed after the lock was released: {outcome.get('error')}"
    store = outcome["store"]
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert store.get_run("nope") is None  # the tables were made once the lock was free
    finally:
        store.dispose()
