"""Channel files: the contract's example loads; typos, missing variables and foreign webhook hosts are
errors that name the file and line; webhook URLs never appear in an error."""

from __future__ import annotations

import textwrap

import pytest

from alerts.channels.config import ChannelLoadError, check_webhook_url, load_channels

SECRET = "https://hooks.slack.com/services/T000/B000/very-secret-token"


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return folder / name


def errors_of(paths, env=None, hosts=("hooks.slack.com",)):
    with pytest.raises(ChannelLoadError) as info:
        load_channels(paths, env=env or {}, webhook_hosts=hosts)
    return info.value.errors


def test_the_contract_example_loads_with_variables_from_the_environment(tmp_path):
    write(tmp_path, "alice.yaml", """
        user: alice
        channels:
          - type: slack
            webhook_url: ${ALICE_SLACK_WEBHOOK}
            min_level: INFO
          - type: slack
            channel: "#ml-alerts"
            min_level: WARN
          - type: email
            to: alice@example.com
            min_level: ERROR
    """)
    channels = load_channels([tmp_path], env={"ALICE_SLACK_WEBHOOK": SECRET})
    destinations = channels.of("alice")
    assert [d.key for d in destinations] == ["alice/slack-0", "alice/slack-1", "alice/email-2"]
    assert destinations[0].config.webhook_url.get_secret_value() == SECRET
    assert SECRET not in repr(destinations[0].config) and "very-secret" not in str(destinations)
    assert destinations[1].config.channel == "#ml-alerts" and destinations[2].config.to == ["alice@example.com"]
    assert [d.config.min_level for d in destinations] == ["INFO", "WARN", "ERROR"]
    assert channels.by_key("alice/email-2") is destinations[2] and channels.of("bob") == []


def test_errors_name_file_line_and_key(tmp_path):
    write(tmp_path, "bob.yaml", """
        user: bob
        channels:
          - type: slack
            webhook_url: ${BOB_HOOK}
          - type: slak
            channel: x
          - type: email
            to: [not-an-email]
          - type: email
            to: bob@example.com
            min_levle: INFO
          - type: slack
            channel: "#a"
            webhook_url: https://hooks.slack.com/services/x
    """)
    errors = errors_of([tmp_path])
    path = tmp_path / "bob.yaml"
    assert f"{path}:4: channels.0.webhook_url: ${{BOB_HOOK}} is not set in the environment" in errors
    errors = errors_of([tmp_path], env={"BOB_HOOK": SECRET})
    assert f"{path}:5: channels.1.type: type must be one of slack, email" in errors
    assert any(e.startswith(f"{path}:8: channels.2.to: ") and "'not-an-email' is not an email address" in e for e in errors)
    assert f"{path}:11: channels.3.min_levle: unknown key 'min_levle'" in errors
    assert any(e.startswith(f"{path}:12: channels.4: ") and "either webhook_url or channel" in e for e in errors)


def test_webhook_hosts_are_checked_and_the_url_is_never_printed(tmp_path):
    evil = "https://attacker.example.com/services/T/B/stolen-secret"
    write(tmp_path, "eve.yaml", f"user: eve\nchannels:\n  - type: slack\n    webhook_url: {evil}\n")
    errors = errors_of([tmp_path])
    assert errors == [f"{tmp_path / 'eve.yaml'}:4: channels.0.webhook_url: webhook host 'attacker.example.com' "
                      "is not in ALERTS_SLACK_WEBHOOK_HOSTS (hooks.slack.com)"]
    assert "stolen-secret" not in "\n".join(errors)


@pytest.mark.parametrize("url, hosts, problem", [
    ("https://hooks.slack.com/services/x", ["hooks.slack.com"], None),
    ("http://hooks.slack.com/services/x", ["hooks.slack.com"], "must use https"),
    ("http://127.0.0.1:8080/services/x", ["127.0.0.1"], None),  # plain http: loopback only
    ("http://localhost:8080/services/x", ["localhost"], None),
    ("http://10.0.0.5/services/x", ["10.0.0.5"], "must use https"),
    ("https://hooks.slack.com.evil.com/x", ["hooks.slack.com"], "is not in ALERTS_SLACK_WEBHOOK_HOSTS"),
    ("not a url", ["hooks.slack.com"], "not a URL"),
])
def test_check_webhook_url(url, hosts, problem):
    result = check_webhook_url(url, hosts)
    assert (result is None) if problem is None else (problem in result)


def test_a_user_has_one_file_and_a_missing_folder_is_no_channels(tmp_path):
    write(tmp_path, "a.yaml", "user: alice\nchannels: []\n")
    write(tmp_path, "b.yml", "user: alice\nchannels: []\n")
    assert any("user 'alice' already has a channel file" in e for e in errors_of([tmp_path]))
    assert load_channels([tmp_path / "missing"], env={}).users == {}


@pytest.mark.parametrize("address", ["a\x00@b.c", "a@b\x0d.c", "a@b.c\x7f"])
def test_an_address_with_a_control_character_is_refused(tmp_path, address):
    """NUL cannot be stored on PostgreSQL, and no control character belongs in a mail header."""
    (tmp_path / "alice.yaml").write_text(
        "user: alice\nchannels:\n  - type: email\n    to: \"" + address.encode("unicode_escape").decode() + "\"\n",
        encoding="utf-8")
    with pytest.raises(ChannelLoadError, match="not an email address"):
        load_channels([tmp_path])
