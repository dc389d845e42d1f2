"""``/api/v1/alerts``: a user lists and reads the alerts of their own runs, filtered and paged; an admin
sees everyone's; another user's alert is a 404. On SQLite and PostgreSQL (the list is a join)."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient

from alerts.server import accounts
from alerts.server.app import create_app
from alerts.settings import load_settings
from tests.server.apidata import add_alert, add_run
from tests.server.conftest import auth

T0 = 1_700_000_000.0


@pytest.fixture
def backend_client(store_backend, server_clock):
    """The app over a fresh store on each backend (SQLite, PostgreSQL), with users alice, bob, root."""
    app = create_app(load_settings(), store=store_backend, clock=server_clock)
    keys = {name: accounts.add_user(store_backend, name, admin=name == "root", now=T0)
            for name in ("alice", "bob", "root")}
    with TestClient(app) as client:
        yield client, store_backend, keys


def _seed(store):
    add_run(store, "a1", "alice", project="vision")
    add_run(store, "a2", "alice", project="nlp")
    add_run(store, "b1", "bob", project="vision")
    add_alert(store, "a1", "alice", title="loss is nan", level="ERROR", now=T0 + 1, value=math.inf)
    add_alert(store, "a1", "alice", title="loss is fine", level="ERROR", status="resolved", now=T0 + 2, value=0.5)
    add_alert(store, "a2", "alice", title="Low accuracy", level="WARN", rule=None, project="nlp", now=T0 + 3)
    add_alert(store, "b1", "bob", title="bob's secret project", level="INFO", now=T0 + 4)


def _titles(answer) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [item["title"] for item in answer.json()["items"]]


def test_filters_visibility_and_nan(backend_client):
    client, store, keys = backend_client
    _seed(store)
    alice = auth(keys["alice"])
    assert _titles(client.get("/api/v1/alerts", headers=alice)) == ["Low accuracy", "loss is fine", "loss is nan"]
    assert _titles(client.get("/api/v1/alerts?project=nlp", headers=alice)) == ["Low accuracy"]
    assert _titles(client.get("/api/v1/alerts?run=a1&status=firing", headers=alice)) == ["loss is nan"]
    assert _titles(client.get("/api/v1/alerts?rule=loss-not-finite", headers=alice)) == ["loss is fine", "loss is nan"]
    assert _titles(client.get("/api/v1/alerts?source=alert", headers=alice)) == ["Low accuracy"]
    assert _titles(client.get("/api/v1/alerts?level=WARN", headers=alice)) == ["Low accuracy"]
    assert _titles(client.get(f"/api/v1/alerts?since={T0 + 2}&until={T0 + 3}", headers=alice)) == ["loss is fine"]
    # Bob's run is in project vision too: alice never sees its alert, whatever she filters on.
    assert "bob's secret project" not in _titles(client.get("/api/v1/alerts?project=vision&level=INFO", headers=alice))
    assert _titles(client.get("/api/v1/alerts?run=b1", headers=alice)) == []
    assert _titles(client.get("/api/v1/alerts?owner=bob", headers=alice)) == []
    nan_alert = client.get("/api/v1/alerts?status=firing&run=a1", headers=alice).json()["items"][0]
    assert nan_alert["value"] == "Infinity" and nan_alert["owner"] == "alice" and nan_alert["project"] == "vision"
    root = auth(keys["root"])
    assert len(_titles(client.get("/api/v1/alerts", headers=root))) == 4
    assert _titles(client.get("/api/v1/alerts?owner=bob", headers=root)) == ["bob's secret project"]


def test_pages_follow_the_cursor(backend_client):
    client, store, keys = backend_client
    add_run(store, "a1", "alice")
    for i in range(7):
        add_alert(store, "a1", "alice", title=f"alert {i}", now=T0 + i)
    seen, cursor = [], None
    while True:
        answer = client.get("/api/v1/alerts", params={"limit": 3, **({"cursor": cursor} if cursor else {})},
                            headers=auth(keys["alice"]))
        seen += _titles(answer)
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"alert {i}" for i in reversed(range(7))]
    assert client.get("/api/v1/alerts?cursor=garbage!", headers=auth(keys["alice"])).status_code == 400


def test_one_alert_with_its_deliveries_and_404_for_others(backend_client):
    client, store, keys = backend_client
    _seed(store)
    items = client.get("/api/v1/alerts", headers=auth(keys["root"])).json()["items"]
    bobs = next(i for i in items if i["owner"] == "bob")
    alices = next(i for i in items if i["owner"] == "alice")
    mine = client.get(f"/api/v1/alerts/{alices['id']}", headers=auth(keys["alice"]))
    assert mine.status_code == 200 and mine.json()["title"] == alices["title"] and mine.json()["deliveries"] == []
    hidden = client.get(f"/api/v1/alerts/{bobs['id']}", headers=auth(keys["alice"]))
    missing = client.get("/api/v1/alerts/999999", headers=auth(keys["alice"]))
    assert hidden.status_code == missing.status_code == 404
    assert "bob" not in hidden.text and "secret" not in hidden.text
    assert client.get(f"/api/v1/alerts/{bobs['id']}", headers=auth(keys["root"])).status_code == 200


@pytest.mark.parametrize("query", ["level=debug", "status=open", "since=nan", "since=abc", "limit=0", "limit=5000",
                                   "source=x", "run=" + "x" * 65])
def test_bad_filters_are_422_naming_the_field(client, make_user, query):
    answer = client.get(f"/api/v1/alerts?{query}", headers=auth(make_user("alice")))
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][-1] == query.split("=")[0]


def test_needs_a_key(client):
    assert client.get("/api/v1/alerts").status_code == 401
    assert client.get("/api/v1/alerts/1").status_code == 401


def test_a_page_of_alerts_on_sqlite_walks_the_primary_key_and_sorts_nothing(server_store):
    # A sort here reads every alert of the user to show 100 of them (seconds with millions of alerts).
    from sqlalchemy import text

    from alerts.server import alertquery
    from alerts.server.accounts import Principal

    for f, after in ((alertquery.AlertFilter(), None), (alertquery.AlertFilter(rule="loss-not-finite"), 500),
                     (alertquery.AlertFilter(level="ERROR", status="firing"), None)):
        query = alertquery.page_ids_query(server_store, Principal("alice"), f, 100, after)
        sql = str(query.compile(server_store.engine, compile_kwargs={"literal_binds": True}))
        with server_store.engine.connect() as conn:
            plan = " | ".join(row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert "TEMP B-TREE" not in plan and "alerts" in plan.split("|")[0], plan
