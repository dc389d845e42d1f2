"""Secrets stay secret: webhook URLs, ALERTS_SLACK_BOT_TOKEN, ALERTS_SMTP_PASSWORD and the password in
ALERTS_DATABASE_URL are never printed (not even with the script's logging at DEBUG), and the SMTP
password never crosses an unencrypted connection unless the user says it may.

Everything here is real: a child interpreter logging at DEBUG, the fake Slack over HTTP, aiosmtpd over
STARTTLS, and PostgreSQL at 127.0.0.1:5432 for the database password.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from alerts import cli, logredact
from alerts.clock import FakeClock
from alerts.delivery import outbox
from alerts.settings import load_settings
from alerts.store.db import open_store
from conftest import POSTGRES_URL
from delivery.test_delivery import channel_file
from fakes.slack import FakeSlack

# The careless servers below take AUTH without TLS on purpose; aiosmtpd warns about just that.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

BOT_TOKEN = "xoxb-1234567890-0987654321-SeCrEtBoTtOkEn"
SMTP_PASSWORD = "smtp-Pa55-SeCrEt-word"
DB_PASSWORD = "db-Pa55-SeCrEt-word"
HOOK_SECRET = "Zq8SeCrEtWeBhOoK4f1Xw2Lm"  # the last part of a webhook URL: whoever has it can post

DEBUG_SCRIPT = """\
    import logging
    logging.basicConfig(level=logging.DEBUG)  # what a user debugging their training script does
    import alerts as wandb
    wandb.init(project="vision")
    wandb.alert(title="Loss is NaN", text="loss became nan at step 3", level="ERROR")
    wandb.finish()
"""


@pytest.fixture
def pg_url_with_password():
    """A PostgreSQL URL with a password in it (the server trusts; the password is only carried) and a
    schema of its own; skipped where PostgreSQL is not reachable, unless in CI."""
    from sqlalchemy import create_engine, text

    schema = f"alerts_secrets_{uuid.uuid4().hex[:8]}"
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    yield POSTGRES_URL.replace("://postgres@", f"://postgres:{DB_PASSWORD}@") + f"?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def every_channel(tmp_path, slack, smtp_host, smtp_port, ca_path):
    """Alice's channels: two webhooks (one of them gone), a channel through chat.postMessage, and two
    mailboxes (one unknown), with all four secrets in the environment; returns (env, webhook URLs)."""
    hooks = [slack.webhook_url(HOOK_SECRET, team="T0SECRET", bot="B0SECRET"),
             slack.webhook_url("GoneSeCrEt9x8y7z", team="T0SECRET", bot="B0GONE")]
    slack.add_channel("#ml-alerts")
    slack.fail_next("GoneSeCrEt9x8y7z", error="no_service")
    folder = tmp_path / "channels"
    channel_file(folder, body=f"""\
      - type: slack
        webhook_url: ${{ALICE_HOOK}}
      - type: slack
        webhook_url: {hooks[1]}
      - type: slack
        channel: "#ml-alerts"
      - type: email
        to: alice@example.com
      - type: email
        to: nobody@example.com
    """)
    env = {"ALERTS_CHANNELS": str(folder), "ALICE_HOOK": hooks[0], "ALERTS_SLACK_WEBHOOK_HOSTS": "127.0.0.1",
           "ALERTS_SLACK_API_URL": slack.api_url, "ALERTS_SLACK_BOT_TOKEN": BOT_TOKEN,
           "ALERTS_SMTP_HOST": smtp_host, "ALERTS_SMTP_PORT": str(smtp_port), "ALERTS_SMTP_STARTTLS": "true",
           "ALERTS_SMTP_USERNAME": "alerts", "ALERTS_SMTP_PASSWORD": SMTP_PASSWORD, "ALERTS_SMTP_CA_FILE": ca_path}
    return env, hooks


def leaked(text: str, hooks: list[str]) -> list[str]:
    """The secrets (or the secret part of a webhook URL) that ``text`` shows."""
    secrets = [BOT_TOKEN, SMTP_PASSWORD, DB_PASSWORD, *hooks, *(h.split("/services/", 1)[1] for h in hooks)]
    return [s for s in secrets if s in text]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_script_logging_at_debug_prints_no_secret(tmp_path, store_dir, monkeypatch, capsys, backend, request):
    from fakes.smtp import FakeSMTP

    with FakeSlack(tokens=(BOT_TOKEN,)) as slack, FakeSMTP(tls="starttls", password=SMTP_PASSWORD) as smtp:
        env, hooks = every_channel(tmp_path, slack, smtp.host, smtp.port, smtp.ca_path)
        if backend == "postgresql":
            env["ALERTS_DATABASE_URL"] = request.getfixturevalue("pg_url_with_password")
        script = tmp_path / "train.py"
        script.write_text(textwrap.dedent(DEBUG_SCRIPT), encoding="utf-8")
        result = subprocess.run([sys.executable, str(script)], env={**os.environ, "ALERTS_DIR": str(store_dir), **env},
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output
        # It did send, with DEBUG logging on: the message reached each working channel ...
        assert len(slack.messages(HOOK_SECRET)) == 1 and len(slack.messages("ml-alerts")) == 1
        assert [m.rcpt_tos for m in smtp.messages] == [["alice@example.com"]]
        assert "DEBUG:slack_sdk.webhook.client:Sending a request" in output  # slack_sdk's DEBUG lines are kept ...
        assert leaked(output, hooks) == []  # ... without the URL, the token or a password

    # The outbox's errors, as recorded and as `alerts deliveries` prints them, show no secret either.
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rows = outbox.listing(open_store(load_settings().resolved_database_url()))
    errors = {r.destination: r.last_error for r in rows if r.state == "dead"}
    assert "no_service" in errors["alice/slack-1"] and "550" in errors["alice/email-4"]
    assert leaked(json.dumps([r.model_dump() for r in rows]), hooks) == []
    capsys.readouterr()
    assert cli.main(["deliveries"]) == 0 and cli.main(["deliveries", "--json"]) == 0
    listing = capsys.readouterr()
    assert "no_service" in listing.out and leaked(listing.out + listing.err, hooks) == []


def test_our_own_log_lines_and_tracebacks_are_masked(caplog):
    """A secret that reaches a log line of ours, or the text of an exception logged with it, is masked:
    the known ones by value, any webhook URL or Slack token by its shape."""
    load_settings(slack_bot_token=BOT_TOKEN, smtp_password=SMTP_PASSWORD)
    hook = f"https://hooks.slack.com/services/T0SECRET/B0SECRET/{HOOK_SECRET}"
    with caplog.at_level(logging.DEBUG):
        try:
            raise RuntimeError(f"could not post to {hook} with {BOT_TOKEN}")
        except RuntimeError:
            logging.getLogger("alerts").exception("alerts: sending with password %s failed", SMTP_PASSWORD)
    text = caplog.text
    assert "sending with password <redacted> failed" in text and "RuntimeError: could not post to" in text
    assert leaked(text, [hook]) == []
    assert logredact.redact("postgresql://u:hunter22@db/x") == "postgresql://u:<redacted>@db/x"


def test_the_servers_request_tracebacks_are_masked(caplog):
    """uvicorn logs the traceback of a request that failed on its own logger; a database URL or a
    webhook in it is masked as in ours."""
    load_settings(smtp_password=SMTP_PASSWORD)
    hook = f"https://hooks.slack.com/services/T0SECRET/B0SECRET/{HOOK_SECRET}"
    with caplog.at_level(logging.DEBUG):
        try:
            raise RuntimeError(f"insert failed: ('{hook}', 'postgresql://u:hunter22@db/x', '{SMTP_PASSWORD}')")
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    assert leaked(caplog.text, [hook]) == [] and "hunter22" not in caplog.text
    assert "Exception in ASGI application" in caplog.text


# -- the SMTP password crosses only an encrypted connection ------------------------------------------


@pytest.fixture
def clock():
    return FakeClock(start=1_800_000_000.0)


def mail_to_alice(tmp_path, monkeypatch, clock, smtp, trust=True, **settings):
    """Alice's channels: one mailbox on ``smtp``, with its username and password if it has them, its CA
    if ``trust``, and ``settings``; ALERTS_SMTP_STARTTLS is left at its default unless given. The test
    relays on ``clock``."""
    folder = tmp_path / "channels"
    channel_file(folder, body="  - type: email\n    to: alice@example.com\n")
    env = {"ALERTS_CHANNELS": str(folder), "ALERTS_RELAY": "0", "ALERTS_SMTP_HOST": smtp.host,
           "ALERTS_SMTP_PORT": str(smtp.port), **settings}
    if smtp.username:
        env.update(ALERTS_SMTP_USERNAME=smtp.username, ALERTS_SMTP_PASSWORD=smtp.password)
    if smtp.ca_path and trust:
        env["ALERTS_SMTP_CA_FILE"] = smtp.ca_path
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("alerts.clock.now", clock)


def alert_and_relay(clock):
    """One alert from a run, relayed once; the outbox row it became."""
    import alerts as wandb
    from delivery.test_delivery import make_relay

    wandb.init(project="vision")
    wandb.alert(title="Loss is NaN", text="x", level="ERROR")
    wandb.finish()
    make_relay(clock).run_once()
    (row,) = outbox.listing(open_store(load_settings().resolved_database_url()))
    return row


def test_by_default_the_password_goes_over_starttls_when_the_server_offers_it(tmp_path, monkeypatch, clock):
    from fakes.smtp import AuthCommand, FakeSMTP

    # A careless server: it offers STARTTLS but would also take the password in plain text.
    with FakeSMTP(tls="starttls", auth_require_tls=False) as smtp:
        mail_to_alice(tmp_path, monkeypatch, clock, smtp)
        assert alert_and_relay(clock).state == "sent"
        assert smtp.auth_commands == [AuthCommand("PLAIN", tls=True)]
        (mail,) = smtp.messages
        assert mail.tls and mail.username == smtp.username


def test_no_starttls_on_offer_refuses_to_send_the_password_and_says_why(tmp_path, monkeypatch, clock, capsys):
    from fakes.smtp import FakeSMTP

    # A server that offers no STARTTLS and takes AUTH in plain text: anyone on the path reads the password.
    with FakeSMTP(tls="none", auth_require_tls=False) as smtp:
        mail_to_alice(tmp_path, monkeypatch, clock, smtp)
        row = alert_and_relay(clock)
        assert row.state == "dead"  # not retried: it fails the same way until the configuration changes
        assert row.last_error == (
            f"refused to send the SMTP username and password unencrypted ({smtp.host}:{smtp.port} does not "
            "offer STARTTLS): use a server with STARTTLS or ALERTS_SMTP_SSL=true, or set "
            "ALERTS_SMTP_ALLOW_PLAINTEXT_AUTH=true to allow it")
        assert cli.main(["notify", "test", "--user", "alice"]) == 1
        out = capsys.readouterr().out
        assert out.startswith("FAILED  alice: email alice@example.com: refused to send the SMTP username and "
                              "password unencrypted") and "would be retried" not in out
        assert smtp.auth_commands == [] and smtp.messages == []  # no AUTH ever reached the server


def test_starttls_false_with_a_password_is_refused_before_connecting(tmp_path, monkeypatch, clock):
    from fakes.smtp import FakeSMTP

    with FakeSMTP(tls="starttls", auth_require_tls=False) as smtp:
        mail_to_alice(tmp_path, monkeypatch, clock, smtp, ALERTS_SMTP_STARTTLS="false")
        row = alert_and_relay(clock)
        assert row.state == "dead" and "unencrypted (ALERTS_SMTP_STARTTLS=false)" in row.last_error
        assert smtp.auth_commands == [] and smtp.messages == []


def test_allowing_plaintext_auth_explicitly_sends(tmp_path, monkeypatch, clock):
    from fakes.smtp import AuthCommand, FakeSMTP

    with FakeSMTP(tls="none", auth_require_tls=False) as smtp:
        mail_to_alice(tmp_path, monkeypatch, clock, smtp, ALERTS_SMTP_ALLOW_PLAINTEXT_AUTH="true")
        assert alert_and_relay(clock).state == "sent"
        assert smtp.auth_commands == [AuthCommand("PLAIN", tls=False)]
        assert [m.username for m in smtp.messages] == [smtp.username]


def test_starttls_required_but_not_offered_is_dead_with_the_reason(tmp_path, monkeypatch, clock):
    from fakes.smtp import FakeSMTP

    with FakeSMTP(tls="none", username=None) as smtp:  # no password involved: STARTTLS itself is required
        mail_to_alice(tmp_path, monkeypatch, clock, smtp, ALERTS_SMTP_STARTTLS="true")
        row = alert_and_relay(clock)
        assert row.state == "dead"
        assert row.last_error == f"{smtp.host}:{smtp.port} does not offer STARTTLS, which ALERTS_SMTP_STARTTLS=true requires"
        assert smtp.messages == []


def test_a_password_never_goes_to_a_server_whose_certificate_is_not_trusted(tmp_path, monkeypatch, clock):
    from fakes.smtp import FakeSMTP

    with FakeSMTP(tls="starttls") as smtp:  # its CA is not given: whoever answers could be in the middle
        mail_to_alice(tmp_path, monkeypatch, clock, smtp, trust=False)
        row = alert_and_relay(clock)
        assert row.state == "dead" and row.last_error.startswith(
            "the SMTP server's TLS certificate is not trusted (") and "ALERTS_SMTP_CA_FILE" in row.last_error
        assert smtp.auth_commands == [] and smtp.messages == []


def test_without_a_password_a_self_signed_relay_still_gets_an_encrypted_connection(tmp_path, monkeypatch, clock):
    from fakes.smtp import FakeSMTP

    # A local relay with a self-signed certificate and no AUTH (a stock postfix): nothing secret crosses,
    # so the upgrade is opportunistic, as between mail servers, rather than a refusal.
    with FakeSMTP(tls="starttls", username=None) as smtp:
        mail_to_alice(tmp_path, monkeypatch, clock, smtp, trust=False)
        assert alert_and_relay(clock).state == "sent"
        (mail,) = smtp.messages
        assert mail.tls and mail.username is None
