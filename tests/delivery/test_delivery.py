"""Alerts reach Slack and email through the outbox: once each, paced, grouped, escaped, retried.

The relay is driven by hand on a fake clock (``relay.run_once(now)``), against the fake Slack and a
real SMTP server, so nothing here waits for a timer; the end-to-end test runs a real script whose own
relay delivers before it exits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import alerts as wandb
from alerts.clock import FakeClock
from alerts.delivery import outbox
from alerts.delivery.relay import Relay
from alerts.settings import load_settings
from alerts.store.db import open_store
from conftest import REPO
from fakes.slack import FakeSlack


def channel_file(folder, user="alice", body=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{user}.yaml").write_text(f"user: {user}\nchannels:\n" + textwrap.dedent(body), encoding="utf-8")


@pytest.fixture
def clock():
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def slack(clock):
    with FakeSlack(clock=clock) as fake:
        yield fake


def use_webhook(tmp_path, monkeypatch, clock, webhook_url):
    """Alice's channels: one webhook. The logging process does not relay (the test does), on ``clock``."""
    folder = tmp_path / "channels"
    channel_file(folder, body=f"  - type: slack\n    webhook_url: {webhook_url}\n")
    monkeypatch.setenv("ALERTS_CHANNELS", str(folder))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    monkeypatch.setenv("ALERTS_RELAY", "0")
    monkeypatch.setattr("alerts.clock.now", clock)
    return folder


@pytest.fixture
def setup(tmp_path, monkeypatch, slack, clock):
    """Alice's channels: a webhook on the fake Slack."""
    return use_webhook(tmp_path, monkeypatch, clock, slack.webhook_url("alice-hook"))


def make_relay(clock, group_interval=30.0):
    from alerts.channels.config import load_channels

    settings = load_settings()
    channels = load_channels([settings.channels], webhook_hosts=settings.slack_webhook_hosts.split(","))
    return Relay(open_store(settings.resolved_database_url()), channels, settings, clock=clock,
                 group_interval=group_interval)


def states(store=None):
    store = store or open_store(load_settings().resolved_database_url())
    return sorted(r.state for r in outbox.listing(store))


def test_an_alert_becomes_one_slack_message(setup, slack, clock):
    run = wandb.init(project="vision", name="resnet")
    wandb.alert(title="Low accuracy", text="accuracy 0.12 < 0.3", level=wandb.AlertLevel.WARN)
    wandb.finish()
    relay = make_relay(clock)
    assert relay.run_once() == 1
    (message,) = slack.messages("alice-hook")
    assert message["text"] == "[WARN] Low accuracy: accuracy 0.12 &lt; 0.3"
    blocks = message["attachments"][0]["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "[WARN] Low accuracy", "emoji": True}}
    assert message["attachments"][0]["color"] == "#f9ab00"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in blocks[2]["fields"]}
    assert fields["*Run*"] == "resnet" and fields["*Project*"] == "vision"
    assert states() == ["sent"]
    (alert,) = wandb.Api().run(run.id).alerts()
    (delivery,) = outbox.listing(open_store(load_settings().resolved_database_url()))
    assert delivery.alert_uid == alert["uid"] and delivery.destination == "alice/slack-0"
    assert relay.run_once() == 0 and len(slack.messages()) == 1  # sent once


def test_user_text_is_escaped_so_an_alert_cannot_ping_the_channel(setup, slack, clock):
    wandb.init(project="p")
    wandb.alert(title="<!channel> & <@U123>", text="see <!here|here> & <https://evil.example|click>")
    wandb.finish()
    make_relay(clock).run_once()
    raw = json.dumps(slack.messages()[0])
    assert "<!channel>" not in raw and "<!here" not in raw and "<@U123>" not in raw and "<https://" not in raw
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in raw


def test_min_level_and_routing_to_the_owner(tmp_path, setup, slack, clock, monkeypatch):
    channel_file(setup, body=f"  - type: slack\n    webhook_url: {slack.webhook_url('alice-hook')}\n    min_level: ERROR\n")
    channel_file(setup, user="bob", body=f"  - type: slack\n    webhook_url: {slack.webhook_url('bob-hook')}\n")
    wandb.init(project="p")  # owned by alice (ALERTS_USER)
    wandb.alert(title="info only", text="x")
    wandb.alert(title="serious", text="x", level="ERROR")
    wandb.finish()
    make_relay(clock).run_once()
    assert [m["text"].split(":")[0] for m in slack.messages("alice-hook")] == ["[ERROR] serious"]
    assert slack.messages("bob-hook") == []


def test_followers_within_the_group_interval_go_together_as_one_message(setup, slack, clock):
    wandb.init(project="sweep")
    relay = make_relay(clock, group_interval=30.0)
    wandb.alert(title="first", text="x")
    wandb.run._writer.flush(10)
    relay.run_once()  # the first alert of the group goes at once
    for i in range(25):
        wandb.alert(title=f"follower {i}", text="x")
    wandb.finish()
    clock.advance(5)
    relay.run_once()  # within the interval: they wait
    assert len(slack.messages()) == 1
    clock.advance(25)
    relay.run_once()
    messages = slack.messages()
    assert len(messages) == 2
    assert messages[1]["text"].startswith("[INFO] follower 0 (+24 more)")
    section = messages[1]["attachments"][0]["blocks"][1]["text"]["text"]
    assert section.count("follower") == 10
    assert messages[1]["attachments"][0]["blocks"][2]["elements"][0]["text"] == "+15 more"
    assert states() == ["sent"] * 26


def test_slack_500_for_a_minute_then_recovering_delivers_everything_once(setup, slack, clock):
    slack.fail_for(60, status=500)
    wandb.init(project="p")
    for i in range(3):
        wandb.alert(title=f"a{i}", text="x")
    wandb.finish()
    relay = make_relay(clock, group_interval=0.0)
    for _ in range(40):  # two minutes of relay passes, 3 s apart
        relay.run_once()
        clock.advance(3)
    texts = [m["text"] for m in slack.messages()]
    assert sorted(texts) == ["[INFO] a0 (+2 more)"] or sorted(t.split(":")[0] for t in texts) == ["[INFO] a0", "[INFO] a1", "[INFO] a2"]
    assert states() == ["sent"] * 3
    assert slack.count(status=500) >= 1
    assert all(r.attempts >= 2 for r in outbox.listing(open_store(load_settings().resolved_database_url())))


def test_429_waits_its_retry_after(setup, slack, clock):
    slack.fail_next("alice-hook", status=429, retry_after=20)
    wandb.init(project="p")
    wandb.alert(title="a", text="x")
    wandb.finish()
    relay = make_relay(clock)
    relay.run_once()
    (row,) = outbox.listing(open_store(load_settings().resolved_database_url()))
    assert row.state == "pending" and row.next_attempt_at == pytest.approx(clock() + 20) and "429" in row.last_error
    clock.advance(19)
    assert relay.run_once() == 0  # not before Retry-After
    clock.advance(1)
    relay.run_once()
    assert len(slack.messages()) == 1 and states() == ["sent"]


@pytest.mark.parametrize("error", ["invalid_payload", "no_service", "channel_is_archived", "action_prohibited"])
def test_webhook_errors_that_will_not_go_away_are_dead_at_once_with_the_reason(setup, slack, clock, error):
    slack.fail_next("alice-hook", error=error)
    wandb.init(project="p")
    wandb.alert(title="a", text="x")
    wandb.finish()
    make_relay(clock).run_once()
    (row,) = outbox.listing(open_store(load_settings().resolved_database_url()))
    assert row.state == "dead" and error in row.last_error and row.attempts == 1


def test_web_api_channel_errors(tmp_path, setup, slack, clock, monkeypatch):
    channel_file(setup, body='  - type: slack\n    channel: "#alerts"\n  - type: slack\n    channel: "#nowhere"\n')
    monkeypatch.setenv("ALERTS_SLACK_BOT_TOKEN", slack.token)
    monkeypatch.setenv("ALERTS_SLACK_API_URL", slack.api_url)
    wandb.init(project="p")
    wandb.alert(title="a", text="x")
    wandb.finish()
    make_relay(clock).run_once()
    rows = {r.destination: r for r in outbox.listing(open_store(load_settings().resolved_database_url()))}
    assert rows["alice/slack-0"].state == "sent" and rows["alice/slack-0"].message_id
    assert rows["alice/slack-1"].state == "dead" and "channel_not_found" in rows["alice/slack-1"].last_error
    assert len(slack.messages("#alerts")) == 1


def test_a_bad_bot_token_is_dead_with_invalid_auth(setup, slack, clock, monkeypatch):
    channel_file(setup, body='  - type: slack\n    channel: "#alerts"\n')
    monkeypatch.setenv("ALERTS_SLACK_BOT_TOKEN", "xoxb-wrong")
    monkeypatch.setenv("ALERTS_SLACK_API_URL", slack.api_url)
    wandb.init(project="p")
    wandb.alert(title="a", text="x")
    wandb.finish()
    make_relay(clock).run_once()
    (row,) = outbox.listing(open_store(load_settings().resolved_database_url()))
    assert row.state == "dead" and "invalid_auth" in row.last_error
    assert "xoxb-wrong" not in row.last_error


def test_a_storm_is_paced_and_folded_without_a_single_429(tmp_path, monkeypatch, clock):
    """10,000 alert() calls with 100 titles: the throttle keeps 100, grouping folds them into a few
    messages, the pacing keeps under Slack's 1 message/s (the fake enforces it), all accounted for."""
    with FakeSlack(clock=clock, rate_limit_per_channel=1.0, burst=1) as slack:
        use_webhook(tmp_path, monkeypatch, clock, slack.webhook_url("storm"))
        run = wandb.init(project="sweep")
        relay = make_relay(clock, group_interval=10.0)
        for i in range(10_000):
            wandb.alert(title=f"title {i % 100}", text=f"call {i}")
            if i % 500 == 0:
                run._writer.flush(10)
                relay.run_once()
                clock.advance(0.2)
        wandb.finish()
        for _ in range(60):
            clock.advance(1)
            relay.run_once()
        records = wandb.Api().run(run.id).alerts()
        assert len(records) == 10_000
        assert sum(r["outcome"] == "notified" for r in records) == 100
        assert slack.count_429 == 0
        messages = slack.messages("storm")
        assert 1 <= len(messages) <= 10
        carried = sum(int(m["text"].split("(+")[1].split(" ")[0]) + 1 if "(+" in m["text"] else 1 for m in messages)
        assert carried == 100
        assert states() == ["sent"] * 100


def test_the_tutorials_alert_script_sends_one_slack_message_and_one_email(tmp_path, slack, fake_smtp):
    folder = tmp_path / "channels"
    channel_file(folder, body="""\
      - type: slack
        webhook_url: ${ALICE_HOOK}
      - type: email
        to: alice@example.com
    """)
    env = {**os.environ, "ALERTS_CHANNELS": str(folder), "ALICE_HOOK": slack.webhook_url("alice"),
           "ALERTS_SLACK_WEBHOOK_HOSTS": "127.0.0.1", "ALERTS_SMTP_HOST": fake_smtp.host,
           "ALERTS_SMTP_PORT": str(fake_smtp.port), "ALERTS_SMTP_STARTTLS": "true",
           "ALERTS_SMTP_USERNAME": fake_smtp.username, "ALERTS_SMTP_PASSWORD": fake_smtp.password,
           "ALERTS_SMTP_CA_FILE": fake_smtp.ca_path, "ALERTS_SMTP_FROM": "alerts@lab.example",
           "EXAMPLE_SEED": "1"}
    result = subprocess.run([sys.executable, str(REPO / "examples" / "accuracy_alert.py")], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (message,) = slack.messages("alice")
    assert message["text"].startswith("[INFO] 낮은 정확도: 정확도 0.12가")
    (mail,) = fake_smtp.messages
    assert mail.message["Subject"] == "[INFO] 낮은 정확도"
    assert mail.rcpt_tos == ["alice@example.com"] and mail.message["From"] == "alerts@lab.example" and mail.tls
    assert mail.username == fake_smtp.username
    assert {part.get_content_type() for part in mail.message.walk()} >= {"text/plain", "text/html"}


def test_a_silence_mutes_matching_deliveries_with_the_reason_and_expires(setup, slack, clock, capsys):
    from alerts import cli

    assert cli.main(["silence", "add", "project=vision", "title=~Low.*", "--duration", "2h",
                     "--comment", "node 7 is being replaced"]) == 0
    assert "silence #1: project=vision title=~Low.*" in capsys.readouterr().out
    assert cli.main(["silence", "add", "projekt=x", "--comment", "typo"]) == 2
    assert "unknown label 'projekt'" in capsys.readouterr().err
    wandb.init(project="vision")
    wandb.alert(title="Low accuracy", text="x")
    wandb.alert(title="Loss is NaN", text="x")
    wandb.finish()
    wandb.init(project="nlp")
    wandb.alert(title="Low accuracy", text="x")
    wandb.finish()
    relay = make_relay(clock, group_interval=0.0)
    relay.run_once()
    rows = outbox.listing(open_store(load_settings().resolved_database_url()))
    by_title = {(json.loads(r.payload)["title"], json.loads(r.payload)["project"]): r for r in rows}
    assert by_title[("Low accuracy", "vision")].state == "suppressed"
    assert by_title[("Low accuracy", "vision")].last_error == "silenced by #1"
    assert by_title[("Loss is NaN", "vision")].state == "sent" and by_title[("Low accuracy", "nlp")].state == "sent"
    assert cli.main(["silence", "list"]) == 0
    listed = capsys.readouterr().out
    assert "#1" in listed and "active" in listed and "node 7 is being replaced" in listed
    assert cli.main(["silence", "expire", "1"]) == 0
    assert cli.main(["silence", "expire", "1"]) == 1
    wandb.init(project="vision")
    wandb.alert(title="Low accuracy again", text="x")
    wandb.finish()
    clock.advance(1)
    relay.run_once()
    assert any(json.loads(r.payload)["title"] == "Low accuracy again" and r.state == "sent"
               for r in outbox.listing(open_store(load_settings().resolved_database_url())))


def test_notify_test_reports_each_channel(tmp_path, monkeypatch, slack, fake_smtp, capsys):
    from alerts import cli

    folder = tmp_path / "channels"
    channel_file(folder, body=f"""\
      - type: slack
        webhook_url: {slack.webhook_url('ok-hook')}
      - type: slack
        webhook_url: {slack.webhook_url('gone-hook')}
      - type: email
        to: alice@example.com
        name: mailbox
    """)
    slack.fail_next("gone-hook", error="no_service")
    for key, value in {"ALERTS_CHANNELS": str(folder), "ALERTS_SLACK_WEBHOOK_HOSTS": "127.0.0.1",
                       "ALERTS_SMTP_HOST": fake_smtp.host, "ALERTS_SMTP_PORT": str(fake_smtp.port),
                       "ALERTS_SMTP_STARTTLS": "true", "ALERTS_SMTP_USERNAME": fake_smtp.username,
                       "ALERTS_SMTP_PASSWORD": fake_smtp.password, "ALERTS_SMTP_CA_FILE": fake_smtp.ca_path}.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["notify", "test", "--user", "alice"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "OK      alice: slack webhook"
    assert out[1].startswith("FAILED  alice: slack webhook: webhook answered 404 no_service")
    assert out[2] == "OK      alice: mailbox"
    assert len(slack.messages("ok-hook")) == 1 and len(fake_smtp.messages) == 1
    assert slack.webhook_url("gone-hook") not in "\n".join(out)  # the secret URL is never printed
    assert cli.main(["notify", "test", "--user", "nobody"]) == 1
