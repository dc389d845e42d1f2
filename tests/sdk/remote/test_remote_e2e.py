"""End to end: a training script in remote mode logs to a real ``alerts serve`` that is stopped and
started again midway; every point and alert arrives, in order, none twice.

The server runs from this tree, or from ``ALERTS_TEST_SERVER_TREE`` (another checkout, e.g. the
branch that builds the runs API before it is merged). A server without the runs API is a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from alerts.store.db import Store
from tests.server.conftest import REPO, LiveServer, free_port

SERVER_TREE = os.environ.get("ALERTS_TEST_SERVER_TREE", str(REPO))

SCRIPT = """
import sys
import alerts

run = alerts.init(project="e2e", config={"lr": 0.1})
print(run.id, flush=True)

def log_steps(first, last):
    for step in range(first, last):
        alerts.log({"loss": float("nan") if step == 300 else 1.0 / (step + 1), "sq": step * step})

log_steps(0, 200)
alerts.alert("before", "the server is up")
print("phase 1", flush=True)
sys.stdin.readline()  # the server is down now
log_steps(200, 400)
alerts.alert("during", "the server is down")
print("phase 2", flush=True)
sys.stdin.readline()  # the server is back
log_steps(400, 600)
alerts.alert("after", "the server is back")
alerts.finish()
print("done", flush=True)
"""

RULES = """
rules:
  - name: loss-nan
    metric: loss
    condition: nan
    level: ERROR
"""


@pytest.fixture
def server(tmp_path):
    """A real ``alerts serve`` over its own folder, with one user; ``(LiveServer, key, store folder)``."""
    folder = tmp_path / "server"
    rules = tmp_path / "server-rules"
    rules.mkdir()
    (rules / "rules.yaml").write_text(RULES)
    # PYTHONSAFEPATH: `python -m alerts` must not take the package from its working folder (this tree).
    env = {**os.environ, "PYTHONPATH": SERVER_TREE, "PYTHONSAFEPATH": "1", "ALERTS_DIR": str(folder),
           "ALERTS_RULES": str(rules), "ALERTS_CHANNELS": str(tmp_path / "no-channels")}
    added = subprocess.run([sys.executable, "-m", "alerts", "users", "add", "alice"], env=env, cwd=SERVER_TREE,
                           capture_output=True, text=True, timeout=60, check=True)
    live = LiveServer(env, free_port(), tmp_path / "serve.log").start()
    paths = httpx.get(live.url + "/openapi.json", timeout=10).json().get("paths", {})
    if "/api/v1/runs/{run_id}/batches" not in paths:
        live.stop()
        pytest.skip(f"the server in {SERVER_TREE} has no runs API yet (set ALERTS_TEST_SERVER_TREE)")
    yield live, added.stdout.strip(), folder
    live.stop()


def _history(url: str, key: str, run_id: str) -> list[dict]:
    rows, cursor = [], None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = client.get(f"/api/v1/runs/{run_id}/history", params=params).raise_for_status().json()
            rows += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return rows


def _last_step(url: str, key: str, run_id: str) -> int:
    try:
        answer = httpx.get(f"{url}/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    except httpx.HTTPError:
        return -1
    return answer.json()["last_step"] if answer.status_code == 200 else -1


def _wait(predicate, what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


def test_a_training_script_logs_through_a_server_restart(server, spawn, tmp_path):
    live, key, server_folder = server
    client_folder = tmp_path / "client"
    child = spawn(SCRIPT, env={"ALERTS_URL": live.url, "ALERTS_API_KEY": key, "ALERTS_DIR": str(client_folder)})
    run_id = child.next_line()
    child.expect("phase 1")
    _wait(lambda: _last_step(live.url, key, run_id) == 199, "the first 200 steps stored")

    live.stop()  # SIGTERM: the server goes away mid-run
    child.send("go\n")
    child.expect("phase 2")
    spool = client_folder / "spool" / run_id
    _wait(lambda: spool.exists() and any(".batch." in p.name for p in spool.iterdir()), "batches spooled")

    live.start()  # the same port
    child.send("go\n")
    child.expect("done")
    assert child.wait() == 0, child.stderr

    history = _history(live.url, key, run_id)
    assert [row["_step"] for row in history] == list(range(600))  # in order, none twice, none lost
    assert history[300]["loss"] == "NaN" and history[599]["sq"] == 599 * 599
    store = Store(f"sqlite:///{server_folder / 'alerts.db'}")
    try:
        records = store.alerts_of(run_id)
        run = store.get_run(run_id)
    finally:
        store.dispose()
    explicit = [a.title for a in records if a.source == "alert"]
    assert explicit == ["before", "during", "after"]
    firing = [a for a in records if a.rule == "loss-nan" and a.status == "firing"]
    assert [a.step for a in firing] == [300]  # evaluated by the server, once, on the replayed rows
    assert run.state == "finished" and run.owner == "alice"
    assert not spool.exists()  # everything was acknowledged
