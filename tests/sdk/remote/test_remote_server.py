"""The remote mode against a real ``alerts serve`` (a child process over the test's ALERTS_DIR): what a
script changes after ``init()`` reaches the server in order, through a restart, and a run another
process writes is the embedded store's ``RunInUseError``."""

from __future__ import annotations

import json
import os
import time

import httpx
import pytest

import alerts
from alerts.errors import RunInUseError
from alerts.sdk import lifecycle, remote
from alerts.server import accounts
from alerts.settings import load_settings
from alerts.store.db import open_store
from remote.remote_helpers import spooled, wait_until, writer_of
from tests.server.conftest import REPO, LiveServer, free_port

STARTUP = 120.0  # seconds a server may take to answer on a loaded machine (a bound, not a timing)


@pytest.fixture
def served(store_dir, tmp_path, monkeypatch):
    """A real server over the test's store, alice's key, and scripts in this test logging to it."""
    key = accounts.add_user(open_store(load_settings().resolved_database_url()), "alice", now=time.time())
    server = LiveServer({**os.environ, "PYTHONPATH": str(REPO)}, free_port(), tmp_path / "serve.log").start(STARTUP)
    monkeypatch.setenv("ALERTS_URL", server.url)
    monkeypatch.setenv("ALERTS_API_KEY", key)
    yield server, key
    for run in lifecycle.live_runs():
        run.finish(timeout=1)
    remote.close_all(timeout=1)
    server.stop()


def get_run(server: LiveServer, key: str, run_id: str) -> dict:
    answer = httpx.get(f"{server.url}/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_changes_after_init_reach_the_server_in_order_through_a_restart(served, store_dir):
    server, key = served
    run = alerts.init(project="p", name="first", config={"lr": 0.1}, tags=["a"])
    alerts.log({"loss": 1.0})
    run.name = "second"
    run.tags = ["b", "c"]
    run.notes = "lr too high?"
    run.config.update({"batch_size": 32})
    run.summary["best_acc"] = 0.9
    assert writer_of(run).flush(60)
    stored = get_run(server, key, run.id)
    assert (stored["name"], stored["tags"], stored["notes"]) == ("second", ["b", "c"], "lr too high?")
    assert stored["config"] == {"lr": 0.1, "batch_size": 32}
    assert stored["summary"]["best_acc"] == 0.9 and stored["summary"]["loss"] == 1.0

    server.stop()  # changes made now wait in the spool, in the order they were made
    run.name = "third"
    run.notes = None
    alerts.log({"loss": 0.5})
    writer_of(run).wake()
    folder = store_dir / "spool" / run.id
    wait_until(lambda: sum(".batch." in name for name in spooled(folder)) >= 2,
               what="the change and the row spooled")
    on_disk = [json.loads((folder / name).read_bytes()) for name in spooled(folder) if ".batch." in name]
    spooled_changes = {key: value for body in on_disk for key, value in body.get("run", {}).items()}
    assert spooled_changes == {"name": "third", "notes": None}
    server.start(STARTUP)
    run.name = "fourth"  # after the spooled one: it must win
    run.summary["best_acc"] = 0.95
    assert writer_of(run).flush(60)
    alerts.finish()
    stored = get_run(server, key, run.id)
    assert (stored["name"], stored["tags"], stored["notes"]) == ("fourth", ["b", "c"], None)
    assert stored["summary"]["best_acc"] == 0.95 and stored["state"] == "finished"
    assert stored["last_step"] == 1


def test_a_run_another_process_writes_is_run_in_use_as_in_the_embedded_store(served):
    server, key = served
    # Another live process (another host) writes run "busy": its create says so, its heartbeat is fresh.
    made = httpx.post(f"{server.url}/api/v1/runs", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                      json={"id": "busy", "project": "p", "host": "gpu-node-9", "pid": 4242})
    assert made.status_code == 201, made.text
    with pytest.raises(RunInUseError) as caught:
        alerts.init(project="p", id="busy", resume="allow")
    message = str(caught.value)
    assert "process 4242 on gpu-node-9" in message  # who holds it, from the server
    assert "resume='allow'" in message and "without id=" in message  # what to do
    assert key not in message
    assert get_run(server, key, "busy")["state"] == "running"  # untouched
