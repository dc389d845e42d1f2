"""Email through a real SMTP server (aiosmtpd: STARTTLS + AUTH), header injection, and the outbox's
claim/lease contract on SQLite and PostgreSQL; a process killed mid-storm and its alerts relayed after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import alerts as wandb
from alerts.channels.base import Notification
from alerts.channels.email import build_email, header_safe
from alerts.clock import FakeClock
from alerts.delivery import outbox
from alerts.settings import load_settings
from alerts.store.db import Batch, open_store
from delivery.test_delivery import channel_file, make_relay
from fakes.slack import FakeSlack


@pytest.fixture
def clock():
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def mail_setup(tmp_path, monkeypatch, fake_smtp, clock):
    folder = tmp_path / "channels"
    channel_file(folder, body="  - type: email\n    to: [alice@example.com, busy@example.com]\n")
    for key, value in {"ALERTS_CHANNELS": str(folder), "ALERTS_RELAY": "0", "ALERTS_SMTP_HOST": fake_smtp.host,
                       "ALERTS_SMTP_PORT": str(fake_smtp.port), "ALERTS_SMTP_STARTTLS": "true",
                       "ALERTS_SMTP_USERNAME": fake_smtp.username, "ALERTS_SMTP_PASSWORD": fake_smtp.password,
                       "ALERTS_SMTP_CA_FILE": fake_smtp.ca_path}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("alerts.clock.now", clock)
    return folder


def only_row():
    (row,) = outbox.listing(open_store(load_settings().resolved_database_url()))
    return row


def test_a_450_recipient_retries_and_a_550_one_is_dead(mail_setup, fake_smtp, clock):
    channel_file(mail_setup, body="  - type: email\n    to: busy@example.com\n  - type: email\n    to: nobody@example.com\n")
    wandb.init(project="p")
    wandb.alert(title="a", text="x", level="ERROR")
    wandb.finish()
    make_relay(clock).run_once()
    rows = {r.destination: r for r in outbox.listing(open_store(load_settings().resolved_database_url()))}
    busy, nobody = rows["alice/email-0"], rows["alice/email-1"]
    assert busy.state == "pending" and "450" in busy.last_error and busy.next_attempt_at > clock()
    assert nobody.state == "dead" and "550" in nobody.last_error
    fake_smtp.set_recipient_answer("busy@example.com", None)  # the mailbox is free again
    clock.advance(3600)
    make_relay(clock).run_once()
    assert only_state("alice/email-0") == "sent"
    assert [m.rcpt_tos for m in fake_smtp.messages] == [["busy@example.com"]]


def only_state(destination):
    return next(r.state for r in outbox.listing(open_store(load_settings().resolved_database_url()))
                if r.destination == destination)


def test_smtp_down_then_up_is_delivered(mail_setup, fake_smtp, clock):
    channel_file(mail_setup, body="  - type: email\n    to: alice@example.com\n")
    wandb.init(project="p")
    wandb.alert(title="a", text="x")
    wandb.finish()
    relay = make_relay(clock)
    with fake_smtp.down():
        relay.run_once()
        row = only_row()
        assert row.state == "pending" and "not reached" in row.last_error
        clock.advance(600)
        relay.run_once()
        assert only_row().attempts == 2
    clock.advance(600)
    relay.run_once()
    assert only_row().state == "sent" and len(fake_smtp.messages) == 1
    mail = fake_smtp.messages[0]
    assert mail.tls and mail.username == "alerts" and mail.message["Subject"] == "[INFO] a"


def test_a_title_with_crlf_adds_no_header(mail_setup, fake_smtp, clock):
    channel_file(mail_setup, body="  - type: email\n    to: alice@example.com\n")
    wandb.init(project="p")
    wandb.alert(title="x\r\nBcc: eve@example.com", text="body\r\nBcc: mallory@example.com")
    wandb.finish()
    make_relay(clock).run_once()
    (mail,) = fake_smtp.messages
    assert mail.rcpt_tos == ["alice@example.com"]
    assert mail.message["Bcc"] is None and "eve@example.com" not in mail.message["Subject"].split(":")[0]
    assert mail.message["Subject"] == "[INFO] x Bcc: eve@example.com"
    header_block = mail.raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in header_block


def test_build_email_is_multipart_and_header_safe():
    n = Notification(title="t\u2028Bcc: x@y", text="<b>hi</b>", level="WARN", run_id="r", run_name="run",
                     project="p", owner="alice", created_at=0.0, metric="loss", value=float("nan"), step=3)
    message = build_email([n, n], "alerts@lab", ["alice@example.com"])
    assert message["Subject"] == "[WARN] t Bcc: x@y (+1 more)"
    html = message.get_body(("html",)).get_content()
    assert "&lt;b&gt;hi&lt;/b&gt;" in html and "loss = nan" in message.get_body(("plain",)).get_content()
    assert header_safe("a\r\n\tb\x0bc") == "a b c"


# -- the outbox contract, on every backend ---------------------------------------------------------

def delivery(i: int, now: float) -> dict:
    return {"alert_uid": f"u{i}", "destination": "alice/slack-0", "user": "alice", "group_key": "g", "level": "INFO",
            "payload": "{}", "state": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now}


@pytest.fixture
def contract_store(store_backend):
    return store_backend


def test_two_relays_never_claim_the_same_row_and_a_dead_lease_is_reclaimed(contract_store):
    now = 1000.0
    contract_store.write_batch(Batch(deliveries=[delivery(i, now) for i in range(10)]))
    first = outbox.claim(contract_store, "relay-a", now, limit=6)
    second = outbox.claim(contract_store, "relay-b", now, limit=6)
    assert len(first) == 6 and len(second) == 4
    assert not {r.id for r in first} & {r.id for r in second}
    assert outbox.claim(contract_store, "relay-c", now) == []
    outbox.mark_sent(contract_store, [r.id for r in first], "relay-a", now, "m1")
    # relay-b dies mid-send: after its lease, another relay takes its rows (a duplicate at most once)
    assert outbox.claim(contract_store, "relay-c", now + outbox.LEASE_SECONDS - 1) == []
    again = outbox.claim(contract_store, "relay-c", now + outbox.LEASE_SECONDS + 1)
    assert sorted(r.id for r in again) == sorted(r.id for r in second)
    assert all(r.attempts == 2 for r in again)
    outbox.mark_sent(contract_store, [r.id for r in second], "relay-b", now, "late")  # the dead relay's word no longer counts
    assert outbox.pending_count(contract_store) == 4
    outbox.mark_dead(contract_store, [r.id for r in again], "relay-c", "no_service")
    assert outbox.pending_count(contract_store) == 0
    dead = outbox.listing(contract_store, "dead")
    assert len(dead) == 4 and outbox.requeue(contract_store, dead[0].id, now + 100)
    assert [r.id for r in outbox.claim(contract_store, "relay-d", now + 100)] == [dead[0].id]


def test_a_sqlite_without_returning_claims_in_a_transaction_and_never_twice(tmp_path):
    # SQLite before 3.35 (still shipped by some distributions) has no UPDATE ... RETURNING.
    from alerts.store.db import Store

    store = Store(f"sqlite:///{tmp_path / 'old.db'}")
    store.engine.dialect.update_returning = False
    try:
        now = 1000.0
        store.write_batch(Batch(deliveries=[delivery(i, now) for i in range(10)]))
        first = outbox.claim(store, "relay-a", now, limit=6, destinations=["alice/slack-0"])
        second = outbox.claim(store, "relay-b", now, limit=6, probe=False)
        assert [r.id for r in first] == sorted(r.id for r in first) and len(first) == 6 and len(second) == 4
        assert not {r.id for r in first} & {r.id for r in second}
        assert outbox.claim(store, "relay-c", now, probe=False) == []
        assert all(r.attempts == 1 and r.lease_owner == "relay-a" for r in first)
    finally:
        store.dispose()


def test_rows_unsent_for_a_day_go_dead(contract_store):
    contract_store.write_batch(Batch(deliveries=[delivery(0, 0.0)]))
    assert outbox.expire(contract_store, now=outbox.MAX_AGE_SECONDS + 1) == 1
    (row,) = outbox.listing(contract_store)
    assert row.state == "dead" and row.last_error.startswith("expired")


# -- kill -9 mid-storm ---------------------------------------------------------------------------

STORM = """
    import sys
    import alerts
    alerts.init(project="storm")
    for i in range(100_000):
        alerts.alert(title=f"t{i}", text="x", wait_duration=1)
        if i == 300:
            print("storming", flush=True)
"""


def test_killed_mid_storm_then_relayed_every_accepted_alert_goes_out_once(tmp_path, spawn, store_dir):
    with FakeSlack() as slack:
        folder = tmp_path / "channels"
        channel_file(folder, body=f"  - type: slack\n    webhook_url: {slack.webhook_url('storm')}\n")
        env = {"ALERTS_CHANNELS": str(folder), "ALERTS_SLACK_WEBHOOK_HOSTS": "127.0.0.1"}
        child = spawn(textwrap.dedent(STORM), env=env)
        child.expect("storming")
        slack.wait_for_messages(1, timeout=60)  # its own relay is sending
        child.proc.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL

        # Accepted = committed: alert() calls of the last writer interval before the kill may be lost
        # (as points are); every committed one must go out.
        accepted = wandb.Api().runs("storm")[0].alerts()
        assert accepted
        result = subprocess.run([sys.executable, "-m", "alerts.cli", "relay", "--timeout", "60"],
                                env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        rows = outbox.listing(open_store(load_settings().resolved_database_url()), limit=1_000_000)
        assert {r.alert_uid for r in rows} == {a["uid"] for a in accepted}  # every accepted alert has its row
        assert all(r.state == "sent" for r in rows)
        carried = sum(int(m["text"].split("(+")[1].split(" ")[0]) + 1 if "(+" in m["text"] else 1
                      for m in slack.messages("storm"))
        duplicates = carried - len(rows)
        assert 0 <= duplicates <= sum(r.attempts > 1 for r in rows)  # at most one per in-flight send
        assert slack.count_429 == 0


def test_leases_of_a_dead_process_on_this_host_are_freed(contract_store):
    now = 1000.0
    contract_store.write_batch(Batch(deliveries=[delivery(i, now) for i in range(3)]))
    dead_owner = outbox.owner_name("hostA", 999_999_999, "x")
    live_owner = outbox.owner_name("hostA", 1, "y")
    other_host = outbox.owner_name("hostB", 999_999_999, "z")
    outbox.claim(contract_store, dead_owner, now, limit=1)
    outbox.claim(contract_store, live_owner, now, limit=1)
    outbox.claim(contract_store, other_host, now, limit=1)
    alive = {1}
    freed = outbox.release_dead_leases(contract_store, "hostA", now + 1, lambda pid: pid in alive)
    assert freed == 1  # only the dead process of this host; another host's leases are not ours to judge
    assert len(outbox.claim(contract_store, "new", now + 1)) == 1
