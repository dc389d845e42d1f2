"""Schemathesis against the API's own OpenAPI schema, in process: whatever a client sends that the
schema allows (and much that it does not), the answer is never a 5xx, and every 2xx body matches the
schema. Bounded: a few dozen examples per operation (about a minute in all on the 2-core machine).

The store holds a little of everything first (runs, alerts, a channel, a silence, a dead delivery),
so that ids the generator tries sometimes exist; callers alternate between a user and an admin."""

from __future__ import annotations

import math

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from alerts.server import accounts
from alerts.server.app import create_app
from alerts.settings import load_settings
from tests.server.apidata import add_alert, add_run

EXAMPLES_PER_OPERATION = 30


@pytest.fixture
def seeded_app(server_store, server_clock, monkeypatch, tmp_path):
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")  # no test message ever leaves the machine
    app = create_app(load_settings(), store=server_store, clock=server_clock)
    keys = {name: accounts.add_user(server_store, name, admin=name == "root", now=server_clock())
            for name in ("alice", "root")}
    with TestClient(app) as client:
        alice = {"Authorization": f"Bearer {keys['alice']}"}
        client.post("/api/v1/channels", headers=alice,
                    json={"type": "slack", "name": "mine", "webhook_url": "http://127.0.0.1:9/services/T/B/X"})
        client.post("/api/v1/silences", headers=alice, json={"matchers": ["level=INFO"], "duration": "1h", "comment": "c"})
        add_run(server_store, "r1", "alice")
        add_alert(server_store, "r1", "alice", channels=app.state.channels, now=server_clock(), value=math.inf)
        yield app, keys


def test_no_5xx_and_bodies_match_the_schema(seeded_app):
    """Every operation of the schema, a bounded number of generated requests each. (Driven with
    Hypothesis directly: schemathesis' pytest plugin does not run under this pytest.)"""
    app, keys = seeded_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(), caller=st.sampled_from(["alice", "root"]))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def exercise(case, caller):
            case.call_and_validate(headers={"Authorization": f"Bearer {keys[caller]}"},
                                   checks=[not_a_server_error, response_schema_conformance])

        try:
            exercise()
        except Exception as exc:  # every operation is tried; all failures are shown together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 15
    assert not failures, "\n\n".join(failures)
