"""``/api/v1/deliveries``: the outbox rows to the caller's channels; a dead one is queued again by retry
(and the relay is woken); another user's delivery is a 404 to list, read or retry."""

from __future__ import annotations

import textwrap

import pytest

from alerts.delivery.relay import Relay
from alerts.server.app import create_app
from alerts.settings import load_settings
from fakes.slack import FakeSlack
from tests.server.apidata import add_alert, add_run
from tests.server.conftest import auth


@pytest.fixture
def slack(server_clock):
    with FakeSlack(clock=server_clock) as fake:
        yield fake


@pytest.fixture
def app(server_store, server_clock, tmp_path, monkeypatch, slack):
    folder = tmp_path / "channels"
    folder.mkdir()
    for user in ("alice", "bob"):
        (folder / f"{user}.yaml").write_text(textwrap.dedent(f"""\
            user: {user}
            channels:
              - type: slack
                name: hook
                webhook_url: {slack.webhook_url(user + "-hook")}
            """), encoding="utf-8")
    monkeypatch.setenv("ALERTS_CHANNELS", str(folder))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    return create_app(load_settings(), store=server_store, clock=server_clock)


@pytest.fixture
def keys(client, make_user):
    return {name: make_user(name, admin=name == "root") for name in ("alice", "bob", "root")}


@pytest.fixture
def dead_for_alice(app, server_store, server_clock, slack):
    """Alice's delivery went dead (Slack: no_service); bob's was sent."""
    add_run(server_store, "ra", "alice")
    add_run(server_store, "rb", "bob")
    add_alert(server_store, "ra", "alice", title="alice alert", channels=app.state.channels, now=server_clock())
    add_alert(server_store, "rb", "bob", title="bob alert", channels=app.state.channels, now=server_clock())
    slack.fail_next("alice-hook", error="no_service")
    Relay(server_store, app.state.channels, app.state.settings, clock=server_clock, group_interval=0).run_once(
        server_clock.advance(1))


def _items(answer):
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_list_own_deliveries_and_retry_a_dead_one(client, app, keys, dead_for_alice, server_store, server_clock, slack):
    woken = []
    app.state.wake_relay = lambda: woken.append(True)
    alice = auth(keys["alice"])
    mine = _items(client.get("/api/v1/deliveries", headers=alice))
    assert [(d["title"], d["state"], d["destination"]) for d in mine] == [("alice alert", "dead", "alice/hook")]
    assert "no_service" in mine[0]["last_error"] and "alice-hook" not in mine[0]["last_error"]
    assert _items(client.get("/api/v1/deliveries?state=sent", headers=alice)) == []
    retried = client.post(f"/api/v1/deliveries/{mine[0]['id']}/retry", headers=alice)
    assert retried.status_code == 200 and retried.json()["state"] == "pending" and woken == [True]
    again = client.post(f"/api/v1/deliveries/{mine[0]['id']}/retry", headers=alice)
    assert again.status_code == 409 and "pending" in again.json()["detail"]
    Relay(server_store, app.state.channels, app.state.settings, clock=server_clock, group_interval=0).run_once(
        server_clock.advance(1))
    assert client.get(f"/api/v1/deliveries/{mine[0]['id']}", headers=alice).json()["state"] == "sent"
    assert len(slack.messages("alice-hook")) == 1


def test_isolation_bob_cannot_list_read_or_retry_alices(client, keys, dead_for_alice):
    alice_id = _items(client.get("/api/v1/deliveries", headers=auth(keys["alice"])))[0]["id"]
    bob = auth(keys["bob"])
    assert [d["title"] for d in _items(client.get("/api/v1/deliveries", headers=bob))] == ["bob alert"]
    assert _items(client.get("/api/v1/deliveries?user=alice", headers=bob)) == []
    assert client.get(f"/api/v1/deliveries/{alice_id}", headers=bob).status_code == 404
    assert client.post(f"/api/v1/deliveries/{alice_id}/retry", headers=bob).status_code == 404
    assert client.get(f"/api/v1/deliveries/{alice_id}", headers=auth(keys["alice"])).json()["state"] == "dead"
    root = auth(keys["root"])
    assert len(_items(client.get("/api/v1/deliveries", headers=root))) == 2
    assert [d["user"] for d in _items(client.get("/api/v1/deliveries?user=alice", headers=root))] == ["alice"]


def test_alert_detail_shows_only_the_callers_deliveries(client, app, keys, server_store, server_clock):
    add_run(server_store, "ra", "alice")
    add_alert(server_store, "ra", "alice", title="both", channels=app.state.channels, notify=["alice", "bob"],
              now=server_clock())
    alert_id = _items(client.get("/api/v1/alerts", headers=auth(keys["alice"])))[0]["id"]
    detail = client.get(f"/api/v1/alerts/{alert_id}", headers=auth(keys["alice"])).json()
    assert [d["user"] for d in detail["deliveries"]] == ["alice"]
    assert client.get(f"/api/v1/alerts/{alert_id}", headers=auth(keys["bob"])).status_code == 404
    assert len(client.get(f"/api/v1/alerts/{alert_id}", headers=auth(keys["root"])).json()["deliveries"]) == 2


def test_filter_by_channel_and_by_run(client, app, keys, server_store, server_clock, tmp_path):
    add_run(server_store, "r1", "alice")
    add_run(server_store, "r2", "alice")
    first = add_alert(server_store, "r1", "alice", title="one", channels=app.state.channels, now=server_clock())
    add_alert(server_store, "r2", "alice", title="two", channels=app.state.channels, now=server_clock())
    alice = auth(keys["alice"])
    assert [d["alert_uid"] for d in _items(client.get("/api/v1/deliveries?run_id=r1", headers=alice))] == [first]
    assert _items(client.get("/api/v1/deliveries?run_id=nope", headers=alice)) == []
    assert len(_items(client.get("/api/v1/deliveries?channel=alice/hook", headers=alice))) == 2
    assert _items(client.get("/api/v1/deliveries?channel=alice/ho", headers=alice)) == []  # a key, not a prefix
    assert _items(client.get("/api/v1/deliveries?run_id=r1", headers=auth(keys["bob"]))) == []
