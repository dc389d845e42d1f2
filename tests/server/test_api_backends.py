"""The API's own tables and queries on both backends (SQLite and PostgreSQL): channels (a name taken
once even when made at the same moment), silences scoped per user, deliveries listed and retried."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient

from alerts.delivery import outbox
from alerts.server import accounts, channelstore
from alerts.server.app import create_app
from alerts.settings import load_settings
from tests.server.apidata import add_alert, add_run
from tests.server.conftest import auth

T0 = 1_700_000_000.0
HOOK = "https://hooks.slack.com/services/T0/B0/backend-secret"


@pytest.fixture
def backend(store_backend, server_clock):
    app = create_app(load_settings(), store=store_backend, clock=server_clock)
    keys = {name: accounts.add_user(store_backend, name, admin=name == "root", now=T0)
            for name in ("alice", "bob", "root")}
    with TestClient(app) as client:
        yield app, client, store_backend, keys


def test_a_name_made_at_once_by_many_requests_is_taken_once(backend):
    app, _, store, _ = backend
    outcomes, barrier = [], threading.Barrier(6)

    def make() -> None:
        barrier.wait()
        try:
            channelstore.create(store, "alice", {"type": "slack", "name": "same", "webhook_url": HOOK},
                                webhook_hosts=["hooks.slack.com"], files=None, now=T0)
            outcomes.append("made")
        except channelstore.ChannelConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=make) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["made"]
    assert [r.name for r in channelstore.all_records(store, "alice")] == ["same"]


def test_channels_silences_and_deliveries_through_the_api(backend, server_clock):
    app, client, store, keys = backend
    alice, bob = auth(keys["alice"]), auth(keys["bob"])
    made = client.post("/api/v1/channels", headers=alice, json={"type": "slack", "name": "hook", "webhook_url": HOOK})
    assert made.status_code == 201 and "backend-secret" not in made.text
    before = channelstore.fingerprint(store)
    assert client.patch(f"/api/v1/channels/{made.json()['id']}", headers=alice, json={"min_level": "WARN"}).status_code == 200
    assert channelstore.fingerprint(store) != before
    assert [d.key for d in app.state.channels.of("alice")] == ["alice/hook"]

    mine = client.post("/api/v1/silences", headers=bob, json={"matchers": ["project=vision"], "duration": 60, "comment": "c"})
    everyone = client.post("/api/v1/silences", headers=auth(keys["root"]),
                           json={"matchers": ["project=nlp"], "duration": 60, "comment": "c", "scope": "all"})
    assert mine.status_code == everyone.status_code == 201
    seen_by_alice = [s["id"] for s in client.get("/api/v1/silences", headers=alice).json()["items"]]
    assert seen_by_alice == [everyone.json()["id"]]
    assert client.get(f"/api/v1/silences/{mine.json()['id']}", headers=alice).status_code == 404

    add_run(store, "r1", "alice")
    add_alert(store, "r1", "alice", channels=app.state.channels, now=server_clock())
    row = outbox.listing(store)[0]
    claimed = outbox.claim(store, "test:1:x", server_clock())
    outbox.mark_dead(store, [r.id for r in claimed], "test:1:x", "no_service")
    listed = client.get("/api/v1/deliveries?state=dead", headers=alice).json()["items"]
    assert [d["id"] for d in listed] == [row.id] and client.get("/api/v1/deliveries", headers=bob).json()["items"] == []
    assert client.post(f"/api/v1/deliveries/{row.id}/retry", headers=bob).status_code == 404
    assert client.post(f"/api/v1/deliveries/{row.id}/retry", headers=alice).json()["state"] == "pending"
    assert client.delete(f"/api/v1/channels/{made.json()['id']}", headers=alice).status_code == 204
    assert app.state.channels.of("alice") == []


def test_alerts_filtered_by_group_and_rule_paged_and_kept_to_their_owner(backend):
    app, client, store, keys = backend
    add_run(store, "a1", "alice", group="sweep-1")
    add_run(store, "a2", "alice", project="audio")
    add_run(store, "b1", "bob", group="sweep-1")
    for i in range(5):
        add_alert(store, "a1", "alice", now=T0 + i, rule="loss-not-finite" if i % 2 else "acc-low")
    add_alert(store, "a2", "alice", project="audio", now=T0 + 10)
    add_alert(store, "b1", "bob", now=T0 + 11)

    def ids(query: str, who: str = "alice") -> list[int]:
        seen, cursor = [], None
        while True:
            page = client.get(f"/api/v1/alerts?{query}&limit=2" + (f"&cursor={cursor}" if cursor else ""),
                              headers=auth(keys[who])).json()
            seen += [a["id"] for a in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                return seen

    assert ids("") == [6, 5, 4, 3, 2, 1]
    assert ids("group=sweep-1") == [5, 4, 3, 2, 1]
    assert ids("group=sweep-1&rule=loss-not-finite") == [4, 2]
    assert ids("project=audio") == [6]
    assert ids("group=sweep-1", "bob") == [7]
    assert ids("group=sweep-1&owner=bob", "alice") == []
    assert ids("group=sweep-1", "root") == [7, 5, 4, 3, 2, 1]
