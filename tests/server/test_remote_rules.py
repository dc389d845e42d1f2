"""Rules of remote runs, evaluated by the server with the SDK's engine: alerts recorded and routed through
the outbox in the batch's transaction, once; firing series survive a restart; stalled rules run from the
tick hooks; run_state rules fire on finish."""

from __future__ import annotations

import textwrap
from typing import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from alerts.server.app import create_app
from alerts.server.live import FORGET_AFTER
from alerts.settings import load_settings
from alerts.store.models import DeliveryRecord
from tests.server.conftest import auth

API = "/api/v1"

RULES = """
rules:
  - name: loss-high
    metric: loss
    condition: "> 10"
    level: ERROR
    title: "loss {value} at step {step} in {run.name}"
    send_resolved: true
  - name: quiet
    kind: stalled
    after: 5m
    level: WARN
  - name: failed
    kind: run_state
    states: [failed, crashed]
    level: ERROR
    title: "{run.name} {run.state} ({exit_code})"
"""


class Server:
    """The app in-process over the test's store, with the relay's wake counted."""

    def __init__(self, app, client: TestClient) -> None:
        self.app, self.client = app, client
        self.woken = 0
        app.state.wake_relay = self._wake

    def _wake(self) -> None:
        self.woken += 1

    def post(self, path: str, key: str, body=None):
        return self.client.post(API + path, json=body, headers=auth(key))

    def batch(self, key: str, run_id: str, seq: int, rows=(), **extra):
        body = {"seq": seq, "rows": [{"step": s, "time": 1000.0 + s, "values": v} for s, v in rows], **extra}
        answer = self.post(f"/runs/{run_id}/batches", key, body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def tick(self, now: float) -> None:
        for hook in self.app.state.tick_hooks:
            hook(now)


@pytest.fixture
def serve(tmp_path, monkeypatch, server_store, server_clock) -> Iterator:
    """``serve()`` starts the app (again: a restart) with RULES and an email channel for alice."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(textwrap.dedent(RULES))
    channels = tmp_path / "channels"
    channels.mkdir()
    (channels / "alice.yaml").write_text("user: alice\nchannels:\n  - {type: email, to: alice@example.com}\n")
    monkeypatch.setenv("ALERTS_RULES", str(rules))
    monkeypatch.setenv("ALERTS_CHANNELS", str(channels))
    clients: list[TestClient] = []

    def start() -> Server:
        if clients:
            clients[-1].__exit__(None, None, None)
        app = create_app(load_settings(), store=server_store, clock=server_clock)
        clients.append(TestClient(app))
        clients[-1].__enter__()
        return Server(app, clients[-1])

    yield start
    clients[-1].__exit__(None, None, None)


def alerts_of(store, run_id: str) -> list:
    return store.alerts_of(run_id)


def deliveries(store) -> list[DeliveryRecord]:
    with Session(store.engine) as session:
        return list(session.exec(select(DeliveryRecord).order_by(DeliveryRecord.id)).all())


def test_a_rule_fires_once_from_a_batch_and_is_routed_in_its_transaction(serve, make_user, server_store):
    server = serve()
    key = make_user("alice")
    server.post("/runs", key, {"id": "r", "project": "p", "name": "trial"})
    rows = [(0, {"loss": 1.0}), (1, {"loss": 50.0}), (2, {"loss": 60.0})]
    server.batch(key, "r", 1, rows)
    (alert,) = alerts_of(server_store, "r")
    assert (alert.source, alert.rule, alert.status, alert.metric, alert.value, alert.step) == \
        ("rule", "loss-high", "firing", "loss", 50.0, 1)
    assert alert.title == "loss 50.0 at step 1 in trial" and alert.outcome == "notified"
    (row,) = deliveries(server_store)
    assert row.alert_uid == alert.uid and row.user == "alice" and row.state == "pending"
    assert server.woken == 1
    server.batch(key, "r", 1, rows)  # a replay: the engine does not see it again
    assert len(alerts_of(server_store, "r")) == 1 and len(deliveries(server_store)) == 1 and server.woken == 1
    server.batch(key, "r", 2, [(3, {"loss": 2.0})])
    assert [a.status for a in alerts_of(server_store, "r")] == ["firing", "resolved"]


def test_explicit_alerts_are_routed_unless_the_client_suppressed_them(serve, make_user, server_store,
                                                                      server_clock):
    server = serve()
    key = make_user("alice")
    server.post("/runs", key, {"id": "r", "project": "p"})
    server.batch(key, "r", 1, alerts=[
        {"title": "Low accuracy", "text": "acc 0.2 < 0.3", "level": "WARN", "wait_duration": 300,
         "created_at": server_clock() - 2, "step": 4},
        {"title": "Low accuracy", "text": "again", "level": "WARN", "wait_duration": 300,
         "created_at": server_clock() - 1, "step": 5, "suppressed": "same title notified 1.0s ago"},
    ])
    sent, held = alerts_of(server_store, "r")
    assert (sent.source, sent.outcome, sent.level, sent.step, sent.wait_duration) == ("alert", "notified", "WARN", 4,
                                                                                       300.0)
    assert sent.created_at == server_clock() - 2
    assert held.outcome == "suppressed" and held.reason == "same title notified 1.0s ago" and held.uid is None
    (row,) = deliveries(server_store)
    assert row.alert_uid == sent.uid and row.next_attempt_at == server_clock() and server.woken == 1


def test_a_restart_continues_firing_series_instead_of_sending_them_again(serve, make_user, server_store):
    server = serve()
    key = make_user("alice")
    server.post("/runs", key, {"id": "r", "project": "p"})
    server.batch(key, "r", 1, [(0, {"loss": 50.0})])
    server = serve()  # a new process: no engine in memory until the run's next batch
    server.batch(key, "r", 2, [(1, {"loss": 70.0})])
    assert [a.status for a in alerts_of(server_store, "r")] == ["firing"]  # still firing: not sent again
    server.batch(key, "r", 3, [(2, {"loss": 1.0})])
    assert [a.status for a in alerts_of(server_store, "r")] == ["firing", "resolved"]


def test_stalled_rules_run_from_the_tick_hooks_for_runs_that_heartbeat(serve, make_user, server_store,
                                                                       server_clock):
    server = serve()
    key = make_user("alice")
    for run_id in ("alive", "gone"):
        server.post("/runs", key, {"id": run_id, "project": "p"})
        server.batch(key, run_id, 1, [(0, {"loss": 1.0})])
    for _ in range(31):  # ten-second heartbeats, for 5 minutes and 10 seconds; "gone" stops at once
        server_clock.advance(10)
        assert server.post("/runs/alive/heartbeat", key).status_code == 204
        server.tick(server_clock())
    (stalled,) = alerts_of(server_store, "alive")
    assert (stalled.rule, stalled.status, stalled.level) == ("quiet", "firing", "WARN")
    assert len(deliveries(server_store)) == 1 and server.woken == 1
    assert [a.rule for a in alerts_of(server_store, "gone")] == []  # not heard from: the crash check's case
    server.tick(server_clock.advance(FORGET_AFTER))
    server.batch(key, "alive", 2, [(1, {"loss": 1.0})])  # data again: resolved
    assert [a.status for a in alerts_of(server_store, "alive")] == ["firing", "resolved"]


def test_finish_fires_run_state_rules_once(serve, make_user, server_store):
    server = serve()
    key = make_user("alice")
    server.post("/runs", key, {"id": "r", "project": "p", "name": "trial"})
    assert server.post("/runs/r/finish", key, {"state": "failed", "exit_code": 2}).json()["state"] == "failed"
    server.post("/runs/r/finish", key, {"state": "failed", "exit_code": 2})
    (alert,) = alerts_of(server_store, "r")
    assert alert.rule == "failed" and alert.title == "trial failed (2)"
    assert len(deliveries(server_store)) == 1 and server.woken == 1


def test_a_reloaded_rule_set_applies_to_live_runs(serve, make_user, server_store, tmp_path):
    server = serve()
    key = make_user("alice")
    server.post("/runs", key, {"id": "r", "project": "p"})
    server.batch(key, "r", 1, [(0, {"acc": 0.1})])
    (tmp_path / "rules" / "r.yaml").write_text("rules:\n  - {name: acc-low, metric: acc, condition: '< 0.5'}\n")
    assert server.app.state.rules.load()
    server.batch(key, "r", 2, [(1, {"acc": 0.2})])
    assert [a.rule for a in alerts_of(server_store, "r")] == ["acc-low"]


def test_after_a_restart_a_run_that_only_heartbeats_still_stalls(serve, make_user, server_store, server_clock):
    server = serve()
    key = make_user("alice")
    server.post("/runs", key, {"id": "r", "project": "p"})
    server.batch(key, "r", 1, [(0, {"loss": 1.0})])
    server_clock.advance(60)
    server = serve()  # a restart: the run is back in memory at its first heartbeat
    for _ in range(25):  # 4 more minutes of heartbeats: 5 minutes since the last data
        server_clock.advance(10)
        server.post("/runs/r/heartbeat", key)
        server.tick(server_clock())
    assert [(a.rule, a.status) for a in alerts_of(server_store, "r")] == [("quiet", "firing")]


def test_a_late_batch_of_an_ended_run_is_stored_but_not_judged(serve, make_user, server_store, server_clock):
    server = serve()
    key = make_user("alice")
    server.post("/runs", key, {"id": "r", "project": "p"})
    server.post("/runs/r/finish", key, {"state": "finished"})
    assert server.batch(key, "r", 1, [(0, {"loss": 50.0})])["stored"]
    for _ in range(40):  # a client that still heartbeats: the run has ended all the same
        server_clock.advance(10)
        assert server.post("/runs/r/heartbeat", key).status_code == 204
        server.tick(server_clock())
    assert alerts_of(server_store, "r") == []  # neither loss-high nor quiet: the run has ended
    run = server.client.get(f"{API}/runs/r", headers=auth(key)).json()
    assert run["state"] == "finished" and run["last_step"] == 0


def test_replicas_sharing_a_run_continue_each_others_firing_series(serve, make_user, server_store, server_clock):
    """A load balancer spreads one run's batches over two servers: what one fired, the other continues
    (no second notification) and resolves once."""
    one = serve()
    two = Server(create_app(load_settings(), store=server_store, clock=server_clock), None)
    with TestClient(two.app) as client:
        two.client = client
        two.app.state.wake_relay = two._wake
        key = make_user("alice")
        one.post("/runs", key, {"id": "r", "project": "p"})
        two.batch(key, "r", 1, [(0, {"loss": 1.0})])  # two's engine: inactive
        one.batch(key, "r", 2, [(1, {"loss": 50.0})])  # one fires
        two.batch(key, "r", 3, [(2, {"loss": 60.0})])  # still firing: two must not fire again
        one.batch(key, "r", 4, [(3, {"loss": 70.0})])
        two.batch(key, "r", 5, [(4, {"loss": 1.0})])  # resolved, once
        one.batch(key, "r", 6, [(5, {"loss": 1.0})])
    assert [(a.status, a.step) for a in alerts_of(server_store, "r")] == [("firing", 1), ("resolved", 4)]


def test_a_run_renamed_by_its_script_is_named_so_in_its_rule_alerts(serve, make_user, server_store):
    server = serve()
    key = make_user("alice")
    server.post("/runs", key, {"id": "r", "project": "p", "name": "trial"})
    server.batch(key, "r", 1, [(0, {"loss": 1.0})], run={"name": "trial-2"})  # run.name = "trial-2"
    server.batch(key, "r", 2, [(1, {"loss": 50.0})])
    (alert,) = alerts_of(server_store, "r")
    assert alert.title == "loss 50.0 at step 1 in trial-2"
