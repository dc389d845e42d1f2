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


LOSS_RULE = "rules:\n  - {name: loss-high, metric: loss, condition: '> 10'}\n"
ACC_RULE = "rules:\n  - {name: acc-low, metric: acc, condition: '< 0.5'}\n"


def rules_of(replica: Replica, key: str) -> list[str]:
    answer = replica.client.get(f"{API}/rules", headers=auth(key))
    assert answer.status_code == 200, answer.text
    return [rule["name"] for rule in answer.json()["items"]]


def rewrite_rules(replicas: tuple, text: str) -> None:
    """The same new rule file deployed on every replica's machine (each reads its own copy)."""
    for replica in replicas:
        (replica.app.state.rules.rules_path / "r.yaml").write_text(text)


def test_a_reload_asked_of_one_replica_reaches_the_other_within_one_pass(replicas, tmp_path):
    (one, two), _, clock = replicas(LOSS_RULE, LOSS_RULE)
    root = accounts.add_user(one.store, "root", admin=True, now=T0)
    rewrite_rules((one, two), ACC_RULE)
    assert two.app.state.jobs.run("rules", clock()) == "ran"
    assert rules_of(two, root) == ["loss-high"]  # nobody asked yet: the files alone change nothing
    answer = one.client.post(f"{API}/rules/reload", headers=auth(root))
    assert answer.status_code == 200 and answer.json()["rules"] == 1
    assert rules_of(one, root) == ["acc-low"]
    assert rules_of(two, root) == ["loss-high"]  # until its next pass of the rules job
    clock.advance(5)
    for replica in (one, two):
        replica.app.state.jobs.run("rules", clock())
    assert rules_of(two, root) == ["acc-low"]
    # The reloaded rules judge the runs whose batches reach the other replica.
    one.post("/runs", root, {"id": "r", "project": "p"})
    two.post("/runs/r/batches", root, {"seq": 1, "rows": [{"step": 0, "time": T0, "values": {"acc": 0.1}}]})
    assert [a.rule for a in two.store.alerts_of("r")] == ["acc-low"]
    generation = two.app.state.rules.generation
    clock.advance(5)
    two.app.state.jobs.run("rules", clock())  # nothing new asked: no reload again
    assert two.app.state.rules.generation == generation

    rewrite_rules((one, two), LOSS_RULE)  # SIGHUP to replica two this time: one follows
    two.app.state.jobs.reload_rules()
    assert rules_of(two, root) == ["loss-high"]
    clock.advance(5)
    one.app.state.jobs.run("rules", clock())
    assert rules_of(one, root) == ["loss-high"]


def test_a_reload_whose_files_do_not_load_is_not_passed_on(replicas):
    (one, two), _, clock = replicas(LOSS_RULE, LOSS_RULE)
    root = accounts.add_user(one.store, "root", admin=True, now=T0)
    rewrite_rules((one, two), "rules:\n  - {name: broken, metric: loss, condition: '>>> 1'}\n")
    assert one.client.post(f"{API}/rules/reload", headers=auth(root)).status_code == 422
    clock.advance(5)
    two.app.state.jobs.run("rules", clock())
    assert rules_of(one, root) == rules_of(two, root) == ["loss-high"]
    assert two.app.state.rules.last_error is None  # two was not asked to load the broken files


def test_a_replica_without_jobs_follows_a_reload_at_its_next_batch(replicas):
    (one, two), _, clock = replicas(LOSS_RULE, LOSS_RULE)  # two never runs its jobs: ALERTS_JOBS=0
    root = accounts.add_user(one.store, "root", admin=True, now=T0)
    one.post("/runs", root, {"id": "r", "project": "p"})
    two.post("/runs/r/batches", root, {"seq": 1, "rows": [{"step": 0, "time": T0, "values": {"acc": 0.1}}]})
    rewrite_rules((one, two), ACC_RULE)
    assert one.client.post(f"{API}/rules/reload", headers=auth(root)).status_code == 200
    clock.advance(5)
    two.post("/runs/r/batches", root, {"seq": 2, "rows": [{"step": 1, "time": T0, "values": {"acc": 0.2}}]})
    assert [a.rule for a in two.store.alerts_of("r")] == ["acc-low"]


def test_a_run_renamed_through_one_replica_is_named_so_by_the_other(replicas):
    (one, two), key, clock = replicas(LOSS_RULE.replace("}", ", title: '{run.name} {run.tags}'}"), LOSS_RULE)
    one.post("/runs", key, {"id": "r", "project": "p", "name": "trial"})
    one.post("/runs/r/batches", key, {"seq": 1, "rows": [{"step": 0, "time": T0, "values": {"loss": 1.0}}]})
    two.post("/runs/r/batches", key, {"seq": 2, "run": {"name": "trial-2", "tags": ["lr-sweep"]}})
    one.post("/runs/r/batches", key, {"seq": 3, "rows": [{"step": 1, "time": T0, "values": {"loss": 50.0}}]})
    (alert,) = one.store.alerts_of("r")
    assert alert.title.startswith("trial-2") and "lr-sweep" in alert.title
