"""``/api/v1/silences``: make, list, read and end silences. A user's silence mutes only the deliveries
to that user's own channels; an admin may mute everyone's (scope: all). Checked through the relay,
which records a muted delivery as suppressed."""

from __future__ import annotations

import textwrap

import pytest

from alerts.delivery import outbox
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
                webhook_url: {slack.webhook_url(user + "-hook")}
            """), encoding="utf-8")
    monkeypatch.setenv("ALERTS_CHANNELS", str(folder))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    return create_app(load_settings(), store=server_store, clock=server_clock)


@pytest.fixture
def keys(client, make_user):
    return {name: make_user(name, admin=name == "root") for name in ("alice", "bob", "root")}


def _silence(client, key, *matchers, **body):
    return client.post("/api/v1/silences", headers=auth(key),
                       json={"matchers": list(matchers), "duration": "2h", "comment": "node 7 is down", **body})


def _deliver_one_alert_to_both(app, store, clock) -> dict:
    """Alice's run raises an alert that notifies alice and bob; the relay runs; {user: state}."""
    add_run(store, "r1", "alice", project="vision")
    uid = add_alert(store, "r1", "alice", channels=app.state.channels, notify=["alice", "bob"], now=clock())
    Relay(store, app.state.channels, app.state.settings, clock=clock, group_interval=0).run_once(clock.advance(1))
    return {row.user: row.state for row in outbox.listing(store) if row.alert_uid == uid}


def test_a_users_silence_mutes_only_their_own_deliveries(client, app, keys, server_store, server_clock, slack):
    made = _silence(client, keys["bob"], "project=vision", "rule=~loss-.*")
    assert made.status_code == 201, made.text
    silence = made.json()
    assert silence["scope"] == "mine" and silence["user"] == "bob" and silence["state"] == "active"
    assert silence["matchers"][1] == {"name": "rule", "op": "=~", "value": "loss-.*"}
    assert _deliver_one_alert_to_both(app, server_store, server_clock) == {"alice": "sent", "bob": "suppressed"}
    assert len(slack.messages("alice-hook")) == 1 and slack.messages("bob-hook") == []


def test_an_admins_silence_for_everyone_mutes_all(client, app, keys, server_store, server_clock, slack):
    assert _silence(client, keys["alice"], "project=vision", scope="all").status_code == 403
    made = _silence(client, keys["root"], {"name": "project", "op": "=", "value": "vision"}, scope="all")
    assert made.status_code == 201 and made.json()["scope"] == "all" and made.json()["user"] is None
    assert _deliver_one_alert_to_both(app, server_store, server_clock) == {"alice": "suppressed", "bob": "suppressed"}
    # Everyone sees it (it mutes their deliveries); only an admin ends it.
    assert [s["id"] for s in client.get("/api/v1/silences", headers=auth(keys["bob"])).json()["items"]] == [made.json()["id"]]
    assert client.post(f"/api/v1/silences/{made.json()['id']}/expire", headers=auth(keys["bob"])).status_code == 403
    assert client.post(f"/api/v1/silences/{made.json()['id']}/expire", headers=auth(keys["root"])).status_code == 200


def test_list_states_and_expire_early(client, keys, server_clock):
    bob = auth(keys["bob"])
    now_one = _silence(client, keys["bob"], "level=INFO").json()
    later = _silence(client, keys["bob"], "level=WARN", starts_at=server_clock() + 3600).json()
    assert later["state"] == "pending"

    def ids(state):
        answer = client.get(f"/api/v1/silences?state={state}", headers=bob)
        assert answer.status_code == 200, answer.text
        return [s["id"] for s in answer.json()["items"]]

    assert ids("current") == [later["id"], now_one["id"]]
    assert ids("active") == [now_one["id"]] and ids("pending") == [later["id"]] and ids("expired") == []
    ended = client.post(f"/api/v1/silences/{now_one['id']}/expire", headers=bob)
    assert ended.status_code == 200 and ended.json()["state"] == "expired"
    assert client.post(f"/api/v1/silences/{now_one['id']}/expire", headers=bob).status_code == 409
    assert ids("expired") == [now_one["id"]] and ids("current") == [later["id"]]
    server_clock.advance(3 * 3600)
    assert ids("current") == [] and ids("all") == [later["id"], now_one["id"]]
    assert client.get(f"/api/v1/silences/{later['id']}", headers=bob).json()["state"] == "expired"


def test_isolation_alice_cannot_see_or_end_bobs_silence(client, keys):
    made = _silence(client, keys["bob"], "project=secret-vision").json()
    alice = auth(keys["alice"])
    assert client.get("/api/v1/silences?state=all", headers=alice).json()["items"] == []
    assert client.get(f"/api/v1/silences/{made['id']}", headers=alice).status_code == 404
    answer = client.post(f"/api/v1/silences/{made['id']}/expire", headers=alice)
    assert answer.status_code == 404 and "secret-vision" not in answer.text
    assert client.get(f"/api/v1/silences/{made['id']}", headers=auth(keys["bob"])).json()["state"] == "active"
    root = auth(keys["root"])
    assert [s["id"] for s in client.get("/api/v1/silences?user=bob", headers=root).json()["items"]] == [made["id"]]


@pytest.mark.parametrize("body, field", [
    ({"matchers": ["nolabel=x"], "duration": "1h", "comment": "c"}, "matchers"),
    ({"matchers": ["rule=~(unclosed"], "duration": "1h", "comment": "c"}, "matchers"),
    ({"matchers": [], "duration": "1h", "comment": "c"}, "matchers"),
    ({"matchers": ["level=INFO"], "duration": "forever", "comment": "c"}, "duration"),
    ({"matchers": ["level=INFO"], "duration": "9" * 400 + "h", "comment": "c"}, "duration"),
    ({"matchers": ["level=INFO"], "duration": -5, "comment": "c"}, "duration"),
    ({"matchers": ["level=INFO"], "comment": "c"}, "duration"),
    ({"matchers": ["level=INFO"], "duration": "1h", "ends_at": 2e9, "comment": "c"}, "duration"),
    ({"matchers": ["level=INFO"], "ends_at": 1.0, "comment": "c"}, "ends_at"),
    ({"matchers": ["level=INFO"], "duration": "1h"}, "comment"),
    ({"matchers": ["level=INFO"], "duration": "1h", "comment": "c", "scope": "world"}, "scope"),
    ({"matchers": [{"name": "level", "op": "~", "value": "x"}], "duration": "1h", "comment": "c"}, "matchers"),
])
def test_bad_silences_are_422_naming_the_field(client, keys, body, field):
    answer = client.post("/api/v1/silences", headers=auth(keys["alice"]), json=body)
    assert answer.status_code == 422, answer.text
    assert any(field in map(str, entry["loc"]) for entry in answer.json()["detail"]), answer.text


@pytest.mark.timeout(60)  # a backtracking engine would take years on these; RE2 takes microseconds
def test_a_users_regex_cannot_stall_the_relay(client, app, keys, server_store, server_clock, slack):
    """Bob's silence regexes are tried on every delivery to him, in the relay everyone's alerts go
    through: exponential ((a+)+) and high-polynomial (.*a.*a...) patterns run in linear time."""
    for pattern in ("(a+)+", "(a|aa)*c", ".*a.*a.*a.*a.*a.*a.*a.*a.*c"):
        assert _silence(client, keys["bob"], f"title=~{pattern}").status_code == 201
    add_run(server_store, "r1", "alice")
    uid = add_alert(server_store, "r1", "alice", title="a" * 240 + "b", channels=app.state.channels,
                    notify=["alice", "bob"], now=server_clock())
    Relay(server_store, app.state.channels, app.state.settings, clock=server_clock, group_interval=0).run_once(
        server_clock.advance(1))
    assert {row.user: row.state for row in outbox.listing(server_store) if row.alert_uid == uid} == {
        "alice": "sent", "bob": "sent"}


def test_regex_syntax_a_linear_engine_cannot_run_is_refused(client, keys):
    answer = _silence(client, keys["bob"], r"title=~(a)\1")
    assert answer.status_code == 422 and "backreference" in answer.text
