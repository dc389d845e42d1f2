"""One email channel, several addresses, a real SMTP server (aiosmtpd) that accepts some and refuses
others: each address has its own outbox row, so a 450 is retried for that address alone, a 550 is
dead with the server's reason, and the addresses that accepted get the alert once."""

from __future__ import annotations

from alerts.delivery import outbox
import alerts as wandb
from alerts.settings import load_settings
from alerts.store.db import open_store
from delivery.test_delivery import channel_file, make_relay
from delivery.test_email_and_outbox import clock, mail_setup  # noqa: F401 (fixtures)


def rows_by_address():
    rows = outbox.listing(open_store(load_settings().resolved_database_url()))
    return {row.destination.split("<")[-1].rstrip(">"): row for row in rows}


def test_a_refused_address_does_not_count_as_sent_nor_resend_to_the_others(mail_setup, fake_smtp, clock):
    channel_file(mail_setup, body="  - type: email\n    to: [alice@example.com, busy@example.com, nobody@example.com]\n")
    wandb.init(project="p")
    wandb.alert(title="loss is nan", text="x", level="ERROR")
    wandb.finish()

    make_relay(clock).run_once()
    rows = rows_by_address()
    assert rows["alice@example.com"].state == "sent"
    assert rows["busy@example.com"].state == "pending" and "450" in rows["busy@example.com"].last_error
    assert rows["busy@example.com"].next_attempt_at > clock()
    assert rows["nobody@example.com"].state == "dead" and "550" in rows["nobody@example.com"].last_error
    assert [m.rcpt_tos for m in fake_smtp.messages] == [["alice@example.com"]]

    fake_smtp.set_recipient_answer("busy@example.com", None)  # the mailbox is free again
    clock.advance(3600)
    make_relay(clock).run_once()
    assert rows_by_address()["busy@example.com"].state == "sent"
    assert rows_by_address()["nobody@example.com"].state == "dead"  # not tried again
    assert [m.rcpt_tos for m in fake_smtp.messages] == [["alice@example.com"], ["busy@example.com"]]
    assert all(m.message["Subject"] == "[ERROR] loss is nan" for m in fake_smtp.messages)


def test_a_row_queued_for_the_whole_channel_is_not_sent_twice_when_one_address_refuses(mail_setup, fake_smtp, clock):
    """A row filed under the channel's own key (queued before each address had its row) goes to all
    the addresses in one email; a refusal then is recorded with who got it, and never retried (which
    would send the accepted addresses the alert again)."""
    channel_file(mail_setup, body="  - type: email\n    to: [alice@example.com, busy@example.com]\n")
    wandb.init(project="p")
    wandb.alert(title="a", text="x")
    wandb.finish()
    store = open_store(load_settings().resolved_database_url())
    with store.engine.begin() as conn:  # as an older version filed it: one row for the channel
        from sqlalchemy import delete, update

        from alerts.store.models import DeliveryRecord
        first = min(r.id for r in outbox.listing(store))
        conn.execute(delete(DeliveryRecord).where(DeliveryRecord.id != first))
        conn.execute(update(DeliveryRecord).values(destination="alice/email-0"))
    make_relay(clock).run_once()
    (row,) = outbox.listing(store)
    assert row.state == "dead" and "busy@example.com" in row.last_error and "450" in row.last_error
    assert "alice@example.com" in row.last_error  # who did get it
    assert [m.rcpt_tos for m in fake_smtp.messages] == [["alice@example.com"]]
    clock.advance(3600)
    make_relay(clock).run_once()
    assert len(fake_smtp.messages) == 1
