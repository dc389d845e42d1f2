"""One contract for every backend the store runs on: SQLite (embedded) and PostgreSQL (server)."""

from __future__ import annotations

import math

import pytest

from alerts.store import jsoncodec
from alerts.sdk.worker import history_chunks
from alerts.store.db import Batch, Store

@pytest.fixture
def store(store_backend):
    return store_backend


def new_run(run_id: str, project: str = "p", created: float = 1.0) -> dict:
    return {"id": run_id, "owner": "alice", "project": project, "name": f"name-{run_id}", "group": "g",
            "job_type": None, "tags": '["a"]', "notes": None, "config": '{"lr": 0.1}', "summary": "{}",
            "state": "running", "created_at": created, "updated_at": created, "heartbeat_at": created,
            "last_step": -1, "host": "h", "pid": 1}


def test_batch_round_trip_keeps_nan_and_order(store):
    batch = Batch(runs=[new_run("r1"), new_run("r2", project="q", created=2.0)])
    rows = [{"loss": math.nan if i == 2 else i, "_step": i, "_timestamp": float(i)} for i in range(5)]
    batch.history = history_chunks("r1", rows[:2]) + history_chunks("r1", rows[2:])  # two chunks
    batch.alerts = [{"run_id": "r1", "created_at": 3.0, "source": "alert", "title": "t", "text": "x",
                     "level": "WARN", "outcome": "notified", "reason": None, "wait_duration": 60.0, "step": 2}]
    batch.update_run("r1", {"state": "finished", "summary": jsoncodec.dumps({"loss": 4}), "last_step": 4})
    store.write_batch(batch)

    assert [r.id for r in store.find_runs()] == ["r2", "r1"]  # newest first
    assert [r.id for r in store.find_runs(project="p")] == ["r1"]
    run = store.get_run("r1")
    assert (run.state, run.last_step, run.group) == ("finished", 4, "g")
    assert jsoncodec.loads(run.summary) == {"loss": 4}
    rows = list(store.iter_history("r1", page_size=1))  # one chunk a page
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4] and math.isnan(rows[2]["loss"])
    assert store.count_history("r1") == 5 and store.count_runs("p") == 1
    assert [r["_step"] for r in store.last_history("r1", limit=2)] == [3, 4]
    assert [r["_step"] for r in store.last_history("r1", limit=4)] == [1, 2, 3, 4]  # across chunks
    (alert,) = store.alerts_of("r1")
    assert (alert.title, alert.outcome, alert.step) == ("t", "notified", 2)
    assert store.resolve_run("p/r1").id == "r1" and store.resolve_run("name-r2").id == "r2"
    assert store.resolve_run("missing") is None


def test_inserting_a_run_twice_keeps_the_first(store):
    store.write_batch(Batch(runs=[new_run("r1")]))
    again = new_run("r1")
    again["name"] = "other"
    store.write_batch(Batch(runs=[again]))  # a retried batch must not fail forever
    assert store.get_run("r1").name == "name-r1"


def test_a_failed_batch_writes_nothing(store):
    store.write_batch(Batch(runs=[new_run("r1")]))
    good = history_chunks("r1", [{"_step": 0, "_timestamp": 0.0}])
    bad = dict(good[0], first_step=None)  # NOT NULL
    bad_batch = Batch(history=[good[0], bad])
    with pytest.raises(Exception):
        store.write_batch(bad_batch)
    assert store.count_history("r1") == 0


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_a_database_password_never_reaches_the_log(caplog, empty_database_url):
    """The writer reports failed writes with the URL, password masked; Settings hides it too.

    A schema of its own (``empty_database_url``): the shared ``test`` database's public schema may be
    at any revision an earlier run left there."""
    from alerts.sdk.worker import Writer
    from alerts.settings import load_settings

    url = empty_database_url.replace("postgres@", "postgres:hunter2-SECRET@")
    store = Store(url)

    def failing(batch):
        raise OSError("disk full")

    store.write_batch = failing
    writer = Writer(store, media_root=__import__("pathlib").Path("/tmp"), interval=0.05)
    writer.append(("r", "r1", {"state": "x"}))
    writer.flush(0.5)
    writer._stopping = True
    assert "could not write to" in caplog.text
    assert "hunter2" not in caplog.text
    settings = load_settings(database_url=url)
    assert "hunter2" not in repr(settings) and settings.resolved_database_url() == url
    store.dispose()
