"""Two replicas of the server (two apps in this process, each with its own connection pool) on one
database, driven on one FakeClock: what every replica runs (the ticks' stalled rules, the rules
reload) happens once across them, or reaches all of them."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from alerts.clock import FakeClock
from alerts.rules import active
from alerts.server import accounts
from alerts.server.app import create_app
from alerts.settings import load_settings
from alerts.store.db import Store
from alerts.store.models import DeliveryRecord
from tests.server.conftest import auth

API = "/api/v1"
T0 = 1_700_000_000.0

STALLED = "rules:\n  - {name: quiet, kind: stalled, after: 5m, level: WARN}\n"


class Replica:
    """One app over its own :class:`Store` of the shared database, its rules in ``rules_dir``."""

    def __init__(self, url: str, clock: FakeClock, rules_dir, monkeypatch) -> None:
        self.store = Store(url)
        monkeypatch.setenv("ALERTS_RULES", str(rules_dir))
        self.app = create_app(load_settings(), store=self.store, clock=clock, jobs=False)
        self.client = TestClient(self.app)
        self.client.__enter__()

    def post(self, path: str, key: str, body=None):
        answer = self.client.post(API + path, json=body, headers=auth(key))
        assert answer.status_code < 300, answer.text
        return answer

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.store.dispose()


@pytest.fixture
def replicas(empty_database_url, tmp_path, monkeypatch) -> Iterator:
    """``replicas(rules_one, rules_two)``: two apps on one database (SQLite file or PostgreSQL schema),
    each reading its own rule folder, alice's key, and the shared clock."""
    clock = FakeClock(T0)
    channels = tmp_path / "channels"
    channels.mkdir()
    (channels / "alice.yaml").write_text("user: alice\nchannels:\n  - {type: email, to: alice@example.com}\n")
    monkeypatch.setenv("ALERTS_CHANNELS", str(channels))
    monkeypatch.setenv("ALERTS_DATABASE_URL", empty_database_url)
    made: list[Replica] = []

    def start(*rules_texts: str):
        for number, text in enumerate(rules_texts):
            folder = tmp_path / f"rules-{number}"
            folder.mkdir(exist_ok=True)
            (folder / "r.yaml").write_text(text)
            made.append(Replica(empty_database_url, clock, folder, monkeypatch))
        key = accounts.add_user(made[0].store, "alice", now=T0)
        return made, key, clock

    yield start
    for replica in made:
        replica.close()
    active.forget()


def tick_at_once(replicas: tuple, now: float) -> None:
    """Both replicas' ticks at the same moment, on two threads (as two machines' schedulers)."""
    start = threading.Barrier(len(replicas))

    def tick(replica: Replica) -> None:
        start.wait()
        assert replica.app.state.jobs.run("ticks", now) == "ran"

    threads = [threading.Thread(target=tick, args=(replica,)) for replica in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def stalled_alerts(store: Store, run_id: str) -> list:
    return [(a.rule, a.status) for a in store.alerts_of(run_id)]


def outbox(store: Store) -> list[DeliveryRecord]:
    with Session(store.engine) as session:
        return list(session.exec(select(DeliveryRecord)).all())


def test_a_stalled_run_both_replicas_hear_from_fires_once(replicas):
    (one, two), key, clock = replicas(STALLED, STALLED)
    one.post("/runs", key, {"id": "r", "project": "p"})
    one.post("/runs/r/batches", key, {"seq": 1, "rows": [{"step": 0, "time": T0, "values": {"loss": 1.0}}]})
    for beat in range(31):  # a load balancer spreads the heartbeats; both replicas tick every 10 s
        clock.advance(10)
        (one if beat % 2 else two).post("/runs/r/heartbeat", key)
        tick_at_once((one, two), clock())
    assert stalled_alerts(one.store, "r") == [("quiet", "firing")]
    assert len(outbox(one.store)) == 1  # one email, not one per replica
    for _ in range(6):  # still stalled: neither replica records it again
        clock.advance(10)
        two.post("/runs/r/heartbeat", key)
        for replica in (one, two):
            replica.app.state.jobs.run("ticks", clock())
    assert stalled_alerts(one.store, "r") == [("quiet", "firing")]
    # Data again, through either replica: resolved once.
    two.post("/runs/r/batches", key, {"seq": 2, "rows": [{"step": 1, "time": clock(), "values": {"loss": 1.0}}]})
    assert stalled_alerts(one.store, "r") == [("quiet", "firing"), ("quiet", "resolved")]


def test_a_run_logging_through_one_replica_is_not_stalled_on_the_other(replicas):
    (one, two), key, clock = replicas(STALLED, STALLED)
    one.post("/runs", key, {"id": "r", "project": "p"})
    two.post("/runs/r/heartbeat", key)  # two hears of it, then only ever gets its heartbeats
    for step in range(40):  # a row a minute through one, for 40 minutes
        clock.advance(60)
        one.post("/runs/r/batches", key, {"seq": step + 1,
                                          "rows": [{"step": step, "time": clock(), "values": {"loss": 1.0}}]})
        two.post("/runs/r/heartbeat", key)
        for replica in (one, two):
            replica.app.state.jobs.run("ticks", clock())
    assert stalled_alerts(one.store, "r") == []
    for _ in range(31):  # then it stops logging (heartbeats only): stalled, once
        clock.advance(10)
        two.post("/runs/r/heartbeat", key)
        one.post("/runs/r/heartbeat", key)
        for replica in (one, two):
            replica.app.state.jobs.run("ticks", clock())
    assert stalled_alerts(one.store, "r") == [("quiet", "firing")]
