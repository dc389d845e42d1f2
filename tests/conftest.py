"""Shared fixtures: every test gets its own store folder, and leaves no live run or writer behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import alerts
from alerts.delivery import detached as delivery_detached
from alerts.delivery import embedded as delivery_embedded
from alerts.rules import active as rules_active
from alerts.sdk import api, lifecycle, worker
from alerts.store import db

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def store_dir(tmp_path, monkeypatch) -> Path:
    """A fresh ``ALERTS_DIR`` for each test; runs still live afterwards are finished and forgotten."""
    folder = tmp_path / "store"
    monkeypatch.setenv("ALERTS_DIR", str(folder))
    # No rules unless a test brings its own: the repository's rules/ must not leak into every test.
    monkeypatch.setenv("ALERTS_RULES", str(tmp_path / "no-rules"))
    monkeypatch.setenv("ALERTS_CHANNELS", str(tmp_path / "no-channels"))
    monkeypatch.setenv("ALERTS_USER", "alice")
    # No server unless a test brings its own: a developer's `alerts login` must not send tests to it.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("ALERTS_MODE", "WANDB_MODE", "WANDB_PROJECT", "ALERTS_DATABASE_URL", "ALERTS_URL", "ALERTS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    yield folder
    for run in lifecycle.live_runs():
        run.finish()
    if api._current is not None and not api._current.finished:
        api._current.finish()
    api._set_globals(None)
    worker.close_all()
    db.forget_stores()
    rules_active.forget()
    delivery_embedded.forget()


def relays_running_for(store_dir: Path) -> list[int]:
    """The detached relays (``alerts relay --detached``) running with ``ALERTS_DIR`` = ``store_dir``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or b"--detached" not in (proc / "cmdline").read_bytes():
                continue
            if f"ALERTS_DIR={store_dir}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


@pytest.fixture(autouse=True)
def no_detached_relay_left(store_dir):
    """Kill the detached relays a test's scripts started on its store (they outlive the scripts)."""
    yield
    for pid in relays_running_for(store_dir):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    for proc in delivery_detached._started:  # started by this process: reap them
        proc.wait(10)
    delivery_detached._started.clear()


@pytest.fixture
def run_script(tmp_path, store_dir):
    """Run a Python script in a child process against the test's store; returns the CompletedProcess."""

    def run(source: str, *args: str, env: dict | None = None, timeout: float = 120, check: bool = False):
        script = tmp_path / "script.py"
        script.write_text(textwrap.dedent(source), encoding="utf-8")
        child_env = {**os.environ, "ALERTS_DIR": str(store_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
        result = subprocess.run([sys.executable, str(script), *args], env=child_env, capture_output=True,
                                text=True, timeout=timeout, cwd=tmp_path)
        if check and result.returncode != 0:
            raise AssertionError(f"script failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    return run


def read_runs(project: str | None = None):
    """The stored runs, oldest first, read through the public Api."""
    return alerts.Api().runs(project)


@pytest.fixture
def spawn(tmp_path, store_dir):
    """Start a script with arguments in a child process (``run_script``'s environment), not waiting:
    ``spawn(source, *args, env={...})`` returns a :class:`children.Child`."""
    from children import spawner, stop_children

    start, started = spawner(tmp_path, store_dir)
    yield start
    stop_children(started)


POSTGRES_URL = os.environ.get("ALERTS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    """The URL of an empty database on each backend: SQLite in a temp folder, and PostgreSQL (the
    machine's ``test`` database) in a schema of its own, dropped afterwards. Unreachable PostgreSQL is
    a skip on a developer's machine and a failure in CI."""
    from sqlalchemy import create_engine, text

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'alerts.db'}"
        return
    import uuid

    schema = f"alerts_test_{uuid.uuid4().hex[:8]}"
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        if os.environ.get("CI"):
            raise  # CI has PostgreSQL: not reaching it is a failure, not a skip
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def store_backend(empty_database_url):
    """A fresh :class:`Store` on each backend (see ``empty_database_url``), disposed before its
    database is dropped."""
    from alerts.store.db import Store

    store = Store(empty_database_url)
    yield store
    store.dispose()


@pytest.fixture
def backend_url(store_backend, monkeypatch):
    """``ALERTS_DATABASE_URL`` pointing at a fresh store on each backend (children inherit it)."""
    monkeypatch.setenv("ALERTS_DATABASE_URL", store_backend.url)
    yield store_backend.url
    for run in lifecycle.live_runs():
        run.finish()
    worker.close_all()
    db.forget_stores()  # before store_backend drops the PostgreSQL schema
