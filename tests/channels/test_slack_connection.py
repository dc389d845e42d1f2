"""A Slack webhook's messages share one kept-open connection, opened ahead of the first message; a
connection the server dropped while idle costs no message and no duplicate; failures still fail."""

from __future__ import annotations

import logging

import pytest

from alerts.channels.base import DeliveryError, Notification
from alerts.channels.slack import SlackWebhook
from fakes.slack import FakeSlack


def note(title: str) -> Notification:
    return Notification(title=title, text="x", level="WARN", run_id="r", run_name="run", project="p", owner="alice",
                        created_at=0.0)


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


def titles(slack, hook):
    return [m["attachments"][0]["blocks"][0]["text"]["text"] for m in slack.messages(hook)]


def test_messages_to_one_webhook_share_the_connection_opened_ahead(slack):
    sender = SlackWebhook(slack.webhook_url("hook"))
    assert sender.connect() is True
    for i in range(3):
        sender.send_group([note(f"t{i}")])
    assert titles(slack, "hook") == ["[WARN] t0", "[WARN] t1", "[WARN] t2"]
    assert slack.connections_accepted == 1


def test_a_connection_the_server_dropped_while_idle_costs_no_message_and_no_duplicate(slack):
    sender = SlackWebhook(slack.webhook_url("hook"))
    sender.send_group([note("before")])
    slack.drop_connections()  # as Slack closes an idle keep-alive connection
    sender.send_group([note("after")])
    assert titles(slack, "hook") == ["[WARN] before", "[WARN] after"]
    assert len(slack.requests) == 2 and slack.connections_accepted == 2


def test_failures_are_still_told_apart_and_the_connection_serves_on(slack, caplog):
    sender = SlackWebhook(slack.webhook_url("hook"))
    slack.fail_next("hook", status=429, retry_after=7)
    with pytest.raises(DeliveryError) as limited:
        sender.send_group([note("a")])
    assert limited.value.recoverable and limited.value.retry_after == 7
    slack.fail_next("hook", status=404, error="no_service")
    with pytest.raises(DeliveryError) as gone:
        sender.send_group([note("b")])
    assert not gone.value.recoverable and "no_service" in str(gone.value)
    sender.send_group([note("c")])
    assert titles(slack, "hook") == ["[WARN] c"]


def test_a_webhook_nobody_listens_on_is_a_recoverable_error_and_connect_says_no(slack):
    url = slack.webhook_url("hook")
    slack.stop()
    sender = SlackWebhook(url)
    assert sender.connect(timeout=0.5) is False
    with pytest.raises(DeliveryError) as error:
        sender.send_group([note("a")])
    assert error.value.recoverable


def test_the_webhook_url_is_not_logged_at_debug(slack, caplog):
    url = slack.webhook_url("secret-hook-part")
    sender = SlackWebhook(url)
    with caplog.at_level(logging.DEBUG):
        sender.send_group([note("a")])
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Sending a request" in logged and "secret-hook-part" not in logged
