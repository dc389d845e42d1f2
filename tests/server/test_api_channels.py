"""``/api/v1/channels``: a user's own channels through the API, beside the read-only ones of the channel
files. Webhook URLs are write-only: never in a response, never in a log line. The relay that holds
``app.state.channels`` sends to a channel made through the API, follows a changed webhook and stops
sending to a deleted channel, without a restart."""

from __future__ import annotations

import logging
import textwrap

import pytest
from fastapi.testclient import TestClient

from alerts.delivery import outbox
from alerts.delivery.relay import Relay
from alerts.server import accounts
from alerts.server.app import create_app
from alerts.settings import load_settings
from fakes.slack import FakeSlack
from tests.server.apidata import add_alert, add_run
from tests.server.conftest import auth

T0 = 1_700_000_000.0


@pytest.fixture
def slack(server_clock):
    with FakeSlack(clock=server_clock) as fake:
        yield fake


@pytest.fixture
def channel_dir(tmp_path, monkeypatch, slack):
    """Alice's channel file: one webhook (read-only through the API). Webhooks on 127.0.0.1 allowed."""
    folder = tmp_path / "channels"
    folder.mkdir()
    (folder / "alice.yaml").write_text(textwrap.dedent(f"""\
        user: alice
        channels:
          - type: slack
            name: team-room
            webhook_url: {slack.webhook_url("alice-file-hook")}
          - type: email
            to: [alice@example.com, oncall@example.com]
            min_level: ERROR
        """), encoding="utf-8")
    monkeypatch.setenv("ALERTS_CHANNELS", str(folder))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    return folder


@pytest.fixture
def app(server_store, server_clock, channel_dir):
    return create_app(load_settings(), store=server_store, clock=server_clock)


@pytest.fixture
def keys(client, make_user):
    return {name: make_user(name, admin=name == "root") for name in ("alice", "bob", "root")}


def _slack_body(slack, hook: str, name: str = "mine", **extra) -> dict:
    return {"type": "slack", "name": name, "webhook_url": slack.webhook_url(hook), **extra}


def test_create_list_update_delete_with_the_webhook_never_shown(client, keys, slack, caplog):
    caplog.set_level(logging.DEBUG)
    alice = auth(keys["alice"])
    secret = slack.webhook_url("alice-api-hook")
    made = client.post("/api/v1/channels", headers=alice, json=_slack_body(slack, "alice-api-hook", min_level="WARN"))
    assert made.status_code == 201, made.text
    channel = made.json()
    assert channel["key"] == "alice/mine" and channel["source"] == "api" and channel["min_level"] == "WARN"
    assert channel["webhook_url"] == "http://127.0.0.1/<redacted>"

    listed = client.get("/api/v1/channels", headers=alice).json()["items"]
    by_name = {c["name"]: c for c in listed}
    assert set(by_name) == {"team-room", "email-1", "mine"}
    assert by_name["team-room"]["read_only"] and by_name["team-room"]["file"] == "alice.yaml"
    assert by_name["email-1"]["to"] == ["alice@example.com", "oncall@example.com"]

    renamed = client.patch(f"/api/v1/channels/{channel['id']}", headers=alice, json={"name": "pager", "min_level": "ERROR"})
    assert renamed.status_code == 200 and renamed.json()["key"] == "alice/pager"
    moved = client.patch(f"/api/v1/channels/{channel['id']}", headers=alice,
                         json={"webhook_url": slack.webhook_url("alice-new-hook")})
    assert moved.status_code == 200 and moved.json()["name"] == "pager"
    got = client.get(f"/api/v1/channels/{channel['id']}", headers=alice)
    assert got.status_code == 200 and got.json()["min_level"] == "ERROR"
    slack.fail_next("alice-new-hook", status=500)  # slack_sdk logs the request URL at DEBUG, and errors
    tested = client.post(f"/api/v1/channels/{channel['id']}/test", headers=alice)
    assert tested.status_code == 200 and tested.json()["results"][0]["ok"] is False
    assert any("slack_sdk" in record.name for record in caplog.records)  # the library did log the request
    responses = [made, renamed, moved, got, tested, client.get("/api/v1/channels", headers=alice)]
    assert client.delete(f"/api/v1/channels/{channel['id']}", headers=alice).status_code == 204
    assert client.get(f"/api/v1/channels/{channel['id']}", headers=alice).status_code == 404
    for answer in responses:
        assert "alice-api-hook" not in answer.text and "alice-new-hook" not in answer.text
        assert "alice-file-hook" not in answer.text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert secret not in logged and "alice-new-hook" not in logged


def test_file_channels_are_read_only(client, keys):
    alice = auth(keys["alice"])
    file_channel = next(c for c in client.get("/api/v1/channels", headers=alice).json()["items"] if c["source"] == "file")
    assert client.patch(f"/api/v1/channels/{file_channel['id']}", headers=alice, json={"min_level": "ERROR"}).status_code == 409
    assert client.delete(f"/api/v1/channels/{file_channel['id']}", headers=alice).status_code == 409
    # A name the file uses already is not free for an API channel of the same user.
    taken = client.post("/api/v1/channels", headers=alice, json={"type": "email", "name": "team-room", "to": "a@b.org"})
    assert taken.status_code == 409 and "team-room" in taken.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({"type": "slack", "name": "x", "webhook_url": "https://evil.example.com/services/T/B/X"}, "webhook_url"),
    ({"type": "slack", "name": "x", "webhook_url": "ftp://127.0.0.1/services/T/B/X"}, "webhook_url"),
    ({"type": "slack", "name": "x"}, None),  # neither webhook_url nor channel
    ({"type": "slack", "name": "a/b", "channel": "#c"}, "name"),
    ({"type": "email", "name": "x", "to": ["not-an-address"]}, "to"),
    ({"type": "email", "name": "x", "to": "a@b.org", "colour": "red"}, "colour"),
    ({"type": "pigeon", "name": "x"}, "type"),
])
def test_bad_channels_are_422_naming_the_field_and_never_echo_the_url(client, keys, body, field):
    answer = client.post("/api/v1/channels", headers=auth(keys["alice"]), json=body)
    assert answer.status_code == 422, answer.text
    if field is not None:
        assert any(field in map(str, entry["loc"]) or f"'{field}'" in entry["msg"]
                   for entry in answer.json()["detail"]), answer.text
    assert "/services/T/B/X" not in answer.text


def test_same_name_twice_is_409(client, keys, slack):
    alice = auth(keys["alice"])
    assert client.post("/api/v1/channels", headers=alice, json=_slack_body(slack, "h1")).status_code == 201
    again = client.post("/api/v1/channels", headers=alice, json=_slack_body(slack, "h2"))
    assert again.status_code == 409
    # Bob may use the same name: names are per user.
    assert client.post("/api/v1/channels", headers=auth(keys["bob"]), json=_slack_body(slack, "h3")).status_code == 201


def test_send_a_test_message_to_an_api_and_a_file_channel(client, keys, slack):
    alice = auth(keys["alice"])
    made = client.post("/api/v1/channels", headers=alice, json=_slack_body(slack, "alice-api-hook")).json()
    answer = client.post(f"/api/v1/channels/{made['id']}/test", headers=alice)
    assert answer.status_code == 200 and answer.json()["results"] == [
        {"destination": "alice/mine", "ok": True, "error": None, "retryable": None}]
    assert len(slack.messages("alice-api-hook")) == 1
    file_channel = next(c for c in client.get("/api/v1/channels", headers=alice).json()["items"] if c["name"] == "team-room")
    assert client.post(f"/api/v1/channels/{file_channel['id']}/test", headers=alice).json()["results"][0]["ok"]
    assert len(slack.messages("alice-file-hook")) == 1
    slack.fail_next("alice-api-hook", error="no_service")
    failed = client.post(f"/api/v1/channels/{made['id']}/test", headers=alice).json()["results"][0]
    assert failed["ok"] is False and failed["retryable"] is False and "no_service" in failed["error"]
    assert "alice-api-hook" not in failed["error"]


def _passes_until(relay, clock, delivered, passes: int = 5) -> None:
    """Relay passes until ``delivered()``: a send a loaded machine timed out is retried at a later pass
    (what the test checks is where the message goes, not that the first try succeeds)."""
    for _ in range(passes):
        relay.run_once(clock.advance(61))
        if delivered():
            return


def test_relay_built_at_start_follows_channels_made_changed_and_deleted(client, app, keys, slack, server_store,
                                                                        server_clock):
    """The relay holds app.state.channels from before the channel existed (as the server's relay job
    does): it judges the new channel at its next pass, sends to the new webhook after a change, and
    leaves rows of a deleted channel alone."""
    relay = Relay(server_store, app.state.channels, app.state.settings, clock=server_clock, group_interval=0)
    alice = auth(keys["alice"])
    add_run(server_store, "r1", "alice")
    made = client.post("/api/v1/channels", headers=alice, json=_slack_body(slack, "first-hook", name="api")).json()
    add_alert(server_store, "r1", "alice", title="first", channels=app.state.channels, now=server_clock())
    _passes_until(relay, server_clock, lambda: slack.messages("first-hook"))
    assert [m["text"] for m in slack.messages("first-hook")][-1].count("first") >= 1

    client.patch(f"/api/v1/channels/{made['id']}", headers=alice, json={"webhook_url": slack.webhook_url("second-hook")})
    add_alert(server_store, "r1", "alice", title="second", rule="other-rule", channels=app.state.channels,
              now=server_clock())
    _passes_until(relay, server_clock, lambda: slack.messages("second-hook"))
    assert len(slack.messages("first-hook")) == 1 and len(slack.messages("second-hook")) == 1

    add_alert(server_store, "r1", "alice", title="third", rule="third-rule", channels=app.state.channels,
              now=server_clock())
    assert client.delete(f"/api/v1/channels/{made['id']}", headers=alice).status_code == 204
    relay.run_once(server_clock.advance(1))
    assert len(slack.messages("second-hook")) == 1
    assert outbox.pending_by_destination(server_store, excluding=())["alice/api"] == 1


def test_another_replica_picks_up_channels_on_its_tick(client, app, keys, slack, server_store, server_clock):
    other = create_app(app.state.settings, store=server_store, clock=server_clock)
    with TestClient(other):
        assert other.state.channels.of("alice") and not [d for d in other.state.channels.of("alice") if d.key == "alice/mine"]
        client.post("/api/v1/channels", headers=auth(keys["alice"]), json=_slack_body(slack, "h"))
        for hook in other.state.tick_hooks:
            hook(server_clock())
        assert [d.key for d in other.state.channels.of("alice")][-1] == "alice/mine"


def test_isolation_bob_cannot_see_change_test_or_delete_alices_channels(client, keys, slack):
    alice, bob = auth(keys["alice"]), auth(keys["bob"])
    made = client.post("/api/v1/channels", headers=alice, json=_slack_body(slack, "alice-api-hook")).json()
    file_id = next(c["id"] for c in client.get("/api/v1/channels", headers=alice).json()["items"] if c["source"] == "file")
    assert client.get("/api/v1/channels", headers=bob).json()["items"] == []
    assert client.get("/api/v1/channels?user=alice", headers=bob).json()["items"] == []
    for channel_id in (made["id"], file_id):
        assert client.get(f"/api/v1/channels/{channel_id}", headers=bob).status_code == 404
        assert client.post(f"/api/v1/channels/{channel_id}/test", headers=bob).status_code == 404
        assert client.patch(f"/api/v1/channels/{channel_id}", headers=bob, json={"min_level": "ERROR"}).status_code == 404
        assert client.delete(f"/api/v1/channels/{channel_id}", headers=bob).status_code == 404
    # Bob cannot redirect Alice's alerts to his webhook, nor make a channel in her name.
    assert client.post("/api/v1/channels?user=alice", headers=bob, json=_slack_body(slack, "bob-hook")).status_code == 403
    assert slack.messages() == []
    assert client.get(f"/api/v1/channels/{made['id']}", headers=alice).json()["min_level"] == "INFO"
    root = auth(keys["root"])
    assert {c["user"] for c in client.get("/api/v1/channels", headers=root).json()["items"]} == {"alice"}
    assert client.post("/api/v1/channels?user=bob", headers=root, json=_slack_body(slack, "bob-hook")).status_code == 201
    assert client.post("/api/v1/channels?user=ghost", headers=root, json=_slack_body(slack, "g")).status_code == 422


def test_secrets_never_reach_the_log_of_a_live_server(live_server, channel_dir, slack):
    """Through a real `alerts serve` at DEBUG: make, test (failing) and list a channel."""
    import httpx

    from alerts.settings import load_settings as settings_now
    from alerts.store.db import open_store

    key = accounts.add_user(open_store(settings_now().resolved_database_url()), "carol", now=T0)
    server = live_server(ALERTS_SLACK_WEBHOOK_HOSTS="127.0.0.1", ALERTS_CHANNELS=str(channel_dir))
    secret = slack.webhook_url("carol-secret-hook")
    headers = auth(key)
    made = httpx.post(server.url + "/api/v1/channels", headers=headers,
                      json={"type": "slack", "name": "c", "webhook_url": secret})
    assert made.status_code == 201, made.text
    slack.fail_next("carol-secret-hook", status=500)
    tested = httpx.post(server.url + f"/api/v1/channels/{made.json()['id']}/test", headers=headers)
    assert tested.status_code == 200 and tested.json()["results"][0]["ok"] is False
    bad = httpx.post(server.url + "/api/v1/channels", headers=headers,
                     json={"type": "slack", "name": "d", "webhook_url": secret.replace("127.0.0.1", "evil.example")})
    assert bad.status_code == 422
    for answer in (made, tested, bad, httpx.get(server.url + "/api/v1/channels", headers=headers)):
        assert "carol-secret-hook" not in answer.text
    server.stop()
    assert "carol-secret-hook" not in server.output()
