"""A NUL character where the store keeps text is the client's mistake: a 422 on both backends, never
a 500 (PostgreSQL refuses NUL in text; these requests failed in the database). Found by probing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from alerts.server import accounts
from alerts.server.app import create_app
from alerts.settings import load_settings
from tests.server.conftest import auth

T0 = 1_700_000_000.0


@pytest.fixture
def api(store_backend, server_clock):
    app = create_app(load_settings(), store=store_backend, clock=server_clock)
    key = accounts.add_user(store_backend, "alice", now=T0)
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers.update(auth(key))
        assert client.post("/api/v1/runs", json={"id": "r1", "project": "p"}).status_code == 201
        yield client


@pytest.mark.parametrize("path, params", [
    ("/api/v1/runs/%00", {}),
    ("/api/v1/runs/r1%00/history", {}),
    ("/api/v1/runs", {"project": "\x00"}),
    ("/api/v1/runs", {"group": "a\x00"}),
    ("/api/v1/alerts", {"project": "\x00"}),
    ("/api/v1/alerts", {"rule": "\x00", "run": "\x00"}),
    ("/api/v1/deliveries", {"destination": "\x00"}),
    ("/api/v1/deliveries", {"alert_uid": "\x00"}),
])
def test_nul_in_a_path_or_filter_is_a_422(api, path, params):
    answer = api.get(path, params=params)
    assert answer.status_code == 422, answer.text
    assert "NUL" in answer.text
    assert api.get("/api/v1/runs/r1").status_code == 200  # nothing else is affected


def test_a_silence_comment_with_nul_is_a_422(api):
    answer = api.post("/api/v1/silences", json={"matchers": ["run=r1"], "duration": "1h", "comment": "x\x00"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "comment"]
    assert api.get("/api/v1/silences").json()["items"] == []
