"""Fixtures of the remote-mode tests: a fake ingest server, the environment pointing at it, a stepped
clock, and the remote writers closed afterwards."""

from __future__ import annotations

import pytest

from alerts.clock import FakeClock
from alerts.sdk import lifecycle, remote
from fakes.ingest import FakeIngest

KEY = "ak_test_alice"


@pytest.fixture
def fake():
    with FakeIngest({KEY: "alice", "ak_test_bob": "bob"}) as server:
        yield server


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """The clock of runs and remote writers made from now on: retries and heartbeats wait for a step."""
    fake_clock = FakeClock()
    monkeypatch.setattr("alerts.clock.now", fake_clock)
    return fake_clock


@pytest.fixture
def online(fake, clock, monkeypatch):
    """Scripts in this test log to the fake server."""
    monkeypatch.setenv("ALERTS_URL", fake.url)
    monkeypatch.setenv("ALERTS_API_KEY", KEY)
    yield fake
    for run in lifecycle.live_runs():
        run.finish(timeout=1)
    remote.close_all(timeout=1)
