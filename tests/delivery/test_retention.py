"""Nothing grows without bound: sent, suppressed and dead outbox rows go after ALERTS_RETENTION
(pending ones never), on SQLite and PostgreSQL; the alert throttle of a run remembers only the titles
that can still suppress something, so 100k unique titles do not stay in memory."""

from __future__ import annotations

import pytest

import alerts as wandb
from alerts.delivery import outbox
from alerts.sdk.alerting import AlertThrottle
from alerts.settings import load_settings
from alerts.store.db import Batch
from delivery.test_delivery import clock, make_relay, setup, slack, states  # noqa: F401 (fixtures)

DAY = 86400.0


def row(i: int, state: str, created_at: float) -> dict:
    return {"alert_uid": f"u{i}", "destination": "alice/slack-0", "user": "alice", "group_key": "g", "level": "INFO",
            "payload": "{}", "state": state, "attempts": 1, "created_at": created_at, "next_attempt_at": created_at}


def test_prune_deletes_old_finished_rows_and_never_a_pending_one(store_backend):
    now = 100 * DAY
    old, fresh = now - 8 * DAY, now - 6 * DAY
    rows = [row(i, state, at) for i, (state, at) in enumerate(
        [(s, t) for s in ("sent", "suppressed", "dead", "pending") for t in (old, fresh)])]
    store_backend.write_batch(Batch(deliveries=rows))
    assert outbox.prune(store_backend, now, retention=7 * DAY) == 3
    left = sorted((r.state, r.created_at == old) for r in outbox.listing(store_backend))
    assert left == [("dead", False), ("pending", False), ("pending", True), ("sent", False), ("suppressed", False)]


def test_prune_goes_in_batches_until_nothing_old_is_left(store_backend, monkeypatch):
    monkeypatch.setattr(outbox, "PRUNE_BATCH", 7)
    store_backend.write_batch(Batch(deliveries=[row(i, "sent", 0.0) for i in range(30)]))
    assert outbox.prune(store_backend, DAY, retention=60.0) == 30
    assert outbox.listing(store_backend) == []


def test_a_relay_prunes_what_it_sent_after_the_retention(setup, slack, clock, monkeypatch):
    monkeypatch.setenv("ALERTS_RETENTION", "2h")
    wandb.init(project="p")
    wandb.alert(title="a", text="x")
    wandb.finish()
    relay = make_relay(clock)
    relay.run_once()
    assert states() == ["sent"]
    clock.advance(3600)
    relay.run_once()
    assert states() == ["sent"]  # within the retention
    clock.advance(3601)
    relay.run_once()
    assert states() == []
    assert len(slack.messages()) == 1


def test_a_retention_that_is_not_a_duration_is_refused(monkeypatch):
    monkeypatch.setenv("ALERTS_RETENTION", "forever")
    with pytest.raises(ValueError, match="not a duration"):
        load_settings()
    monkeypatch.setenv("ALERTS_RETENTION", "0s")
    with pytest.raises(ValueError, match="longer than 0s"):
        load_settings()
    monkeypatch.setenv("ALERTS_RETENTION", "30d")
    assert load_settings().retention_seconds() == 30 * DAY


def test_the_throttle_remembers_only_the_titles_a_window_can_still_cover():
    throttle = AlertThrottle()
    now = 1000.0
    for i in range(100_000):  # 1,000 unique titles a second, wait_duration 1 s
        assert throttle.allow(f"title {i}", 1.0, now + i / 1000)[0]
    assert len(throttle) <= 2 * AlertThrottle.SWEEP_AT
    # what a window still covers is still suppressed
    assert throttle.allow("title 99999", 1.0, now + 100.0)[0] is False


def test_a_long_wait_duration_keeps_its_title_through_sweeps():
    throttle = AlertThrottle()
    assert throttle.allow("nightly", 3600.0, 0.0)[0]
    for i in range(29_000):  # sweeps happen meanwhile: "nightly" is older than every short window
        throttle.allow(f"t{i}", 1.0, 1.0 + i / 10)
    assert throttle.allow("nightly", 3600.0, 3000.0) == (False, "same title notified 3000.0s ago (wait_duration 3600s)")
    assert throttle.allow("nightly", 3600.0, 3600.0)[0]
