"""``/metrics``: what the relay sent and failed to send (Alertmanager's names), the outbox and live
runs read from the store, ingest counts, the jobs; parsed with prometheus_client's own parser."""

from __future__ import annotations

import types

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from alerts.sdk.crashes import CRASH_AFTER
from alerts.server.app import create_app
from alerts.settings import load_settings
from fakes.slack import FakeSlack
from server.jobkit import add_alert, add_run, slack_channels


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def served(tmp_path, slack, monkeypatch, server_store, server_clock):
    monkeypatch.setenv("ALERTS_CHANNELS", str(slack_channels(tmp_path / "channels", slack, ("alice",))))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    app = create_app(load_settings(), store=server_store, clock=server_clock, jobs=False)
    with TestClient(app) as client:
        yield app, client


def scrape(client) -> dict:
    """``{(name, labels as sorted tuple): value}`` of every sample /metrics serves."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")  # the text format
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def test_metrics_count_sends_failures_the_outbox_live_runs_ingest_and_jobs(served, server_store, server_clock, slack):
    app, client = served
    now = server_clock()
    run_id = add_run(server_store, now)
    add_run(server_store, now - CRASH_AFTER - 5, project="q")  # silent for too long: not live
    add_alert(server_store, app.state.channels, run_id, "first", now)
    app.state.jobs.run("relay", now)  # sent
    slack.fail_next("alice-hook", status=500)
    server_clock.advance(60)  # past the group interval: a message of its own
    add_alert(server_store, app.state.channels, run_id, "second", server_clock())
    app.state.jobs.run("relay", server_clock())  # 500: retried later
    app.state.metrics.ingested(points=1200, batches=3, alerts=1, replayed=1)

    m = scrape(client)
    slack_ = (("integration", "slack"),)
    assert m[("alerts_notifications_total", slack_)] == 2  # attempted: one sent, one failed (Alertmanager's meaning)
    assert m[("alerts_notifications_failed_total", (("integration", "slack"), ("reason", "retry")))] == 1
    assert m[("alerts_notification_latency_seconds_count", slack_)] == 2
    assert m[("alerts_notification_delay_seconds_count", slack_)] == 1
    assert m[("alerts_alerts_delivered_total", ())] == 1
    assert m[("alerts_outbox_rows", (("state", "sent"),))] == 1
    assert m[("alerts_outbox_rows", (("state", "pending"),))] == 1
    assert m[("alerts_outbox_rows", (("state", "dead"),))] == 0
    assert m[("alerts_outbox_oldest_pending_age_seconds", ())] == 0  # the pending one was raised just now
    assert m[("alerts_runs_live", ())] == 1
    assert m[("alerts_ingest_points_total", ())] == 1200
    assert m[("alerts_ingest_batches_total", ())] == 3
    assert m[("alerts_ingest_replayed_batches_total", ())] == 1
    assert m[("alerts_job_runs_total", (("job", "relay"), ("outcome", "ran")))] == 2
    assert m[("alerts_job_leader", (("job", "relay"),))] == 1
    assert m[("alerts_job_last_success_timestamp_seconds", (("job", "relay"),))] == server_clock()
    assert m[("process_resident_memory_bytes", ())] > 0
    server_clock.advance(90)
    assert scrape(client)[("alerts_outbox_oldest_pending_age_seconds", ())] == 90


def test_metrics_carry_no_title_name_or_secret(served, server_store, server_clock, slack):
    app, client = served
    now = server_clock()
    add_alert(server_store, app.state.channels, add_run(server_store, now, name="secret-project-run"),
              "title-xyzzy", now)
    app.state.jobs.run("relay", now)
    text = client.get("/metrics").text
    for private in ("title-xyzzy", "secret-project-run", "/services/", "alice"):
        assert private not in text


def test_metrics_answer_when_the_store_does_not_and_name_no_password(served, caplog):
    app, client = served
    unreachable = create_engine("postgresql+psycopg://alerts:pw-sesame@127.0.0.1:9/alerts",
                                connect_args={"connect_timeout": 2})
    app.state.store = types.SimpleNamespace(engine=unreachable)
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert "alerts_notifications_total" in answer.text and "alerts_outbox_rows" not in answer.text
    assert "the store did not answer" in caplog.text and "pw-sesame" not in caplog.text


def test_a_silenced_delivery_is_counted_apart_from_failures(served, server_store, server_clock, slack):
    from alerts.pipeline import silence

    app, client = served
    now = server_clock()
    silence.add(server_store, [silence.parse_matcher("project=muted")], now - 1, now + 3600, "alice", "", now)
    add_alert(server_store, app.state.channels, add_run(server_store, now, project="muted"), "hush", now,
              project="muted")
    app.state.jobs.run("relay", now)
    m = scrape(client)
    assert m[("alerts_notifications_silenced_total", (("integration", "slack"),))] == 1
    assert not any(name == "alerts_notifications_failed_total" for name, _ in m)
    assert slack.messages() == []
