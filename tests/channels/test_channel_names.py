"""Each channel of a user is filed under its own key: two channels that would share one (the same
``name:``, or a name equal to another channel's default ``type-N``) are refused at load with file and
line, instead of both riding to the first one and the second getting nothing."""

from __future__ import annotations

import pytest

import alerts as wandb
from alerts.channels.config import ChannelLoadError, load_channels
from alerts.delivery import outbox
from alerts.settings import load_settings
from alerts.store.db import open_store
from channels.test_channel_config import errors_of, write
from delivery.test_delivery import make_relay
from fakes.slack import FakeSlack


def test_two_channels_with_one_name_are_an_error_naming_file_and_lines(tmp_path):
    path = write(tmp_path, "alice.yaml", """
        user: alice
        channels:
          - type: slack
            name: team
            webhook_url: https://hooks.slack.com/services/T0/B0/one
          - type: slack
            name: team
            webhook_url: https://hooks.slack.com/services/T0/B0/two
    """)
    (error,) = errors_of([tmp_path])
    assert error.startswith(f"{path}:7: channels.1.name: channel 'alice/team' is already channels.0 (line 3)")
    assert "/services/" not in error  # the webhook URLs are secrets


def test_a_name_that_is_another_channels_default_key_is_an_error(tmp_path):
    write(tmp_path, "alice.yaml", """
        user: alice
        channels:
          - type: email
            name: slack-1
            to: a@example.com
          - type: slack
            channel: "#ml"
    """)
    (error,) = errors_of([tmp_path])
    assert ":6: channels.1.type: channel 'alice/slack-1' is already channels.0" in error


def test_one_name_for_two_users_is_fine(tmp_path):
    for user in ("alice", "bob"):
        write(tmp_path, f"{user}.yaml", f"""
            user: {user}
            channels:
              - {{type: email, name: mail, to: {user}@example.com}}
        """)
    channels = load_channels([tmp_path], env={})
    assert [d.key for d in channels.of("alice") + channels.of("bob")] == ["alice/mail", "bob/mail"]


def test_a_second_file_of_the_same_user_with_the_same_name_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "user: alice\nchannels:\n  - {type: email, name: mail, to: a@example.com}\n")
    write(tmp_path, "b.yaml", "user: alice\nchannels:\n  - {type: email, name: mail, to: b@example.com}\n")
    (error,) = errors_of([tmp_path])
    assert error.startswith(f"{tmp_path / 'b.yaml'}:1: user 'alice' already has a channel file")


@pytest.fixture
def fake_slack():
    with FakeSlack() as slack:
        yield slack


def test_a_process_with_duplicate_names_sends_nothing_to_the_wrong_channel(tmp_path, monkeypatch, fake_slack):
    """What the user saw: both alerts went to the first webhook and both rows were `sent`. Now the
    channel files do not load: the alert is recorded and printed, and no row is filed under a shared key."""
    folder = tmp_path / "channels"
    write(folder, "alice.yaml", f"""
        user: alice
        channels:
          - {{type: slack, name: team, webhook_url: "{fake_slack.webhook_url('one')}"}}
          - {{type: slack, name: team, webhook_url: "{fake_slack.webhook_url('two')}"}}
    """)
    monkeypatch.setenv("ALERTS_CHANNELS", str(folder))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    monkeypatch.setenv("ALERTS_RELAY", "0")
    wandb.init(project="p")
    wandb.alert(title="a", text="x")
    wandb.finish()
    assert outbox.listing(open_store(load_settings().resolved_database_url())) == []
    with pytest.raises(ChannelLoadError):
        make_relay(clock=lambda: 0.0)
    assert fake_slack.messages("one") == [] and fake_slack.messages("two") == []
