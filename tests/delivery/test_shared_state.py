"""Delivery state in the store: every relay on a store (every process) sends as one.

The first part drives several relays by hand on one fake clock over one real store (SQLite and
PostgreSQL), as several processes would hold them, against the fake Slack pacing at Slack's rate;
the last part runs real processes: a sweep's 12 failing runs and 8 DDP ranks logging NaN.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest

from alerts.channels.base import Notification
from alerts.channels.config import ChannelSet, Destination, EmailChannel, SlackChannel
from alerts.clock import FakeClock
from alerts.delivery import outbox
from alerts.delivery.relay import Relay
from alerts.settings import load_settings
from alerts.store.db import Batch
from conftest import REPO
from fakes.slack import FakeSlack

START = 1_800_000_000.0
INTERVAL = 30.0


@pytest.fixture
def clock():
    return FakeClock(start=START)


@pytest.fixture
def slack(clock):
    """The fake Slack on the test's clock, refusing (429) more than 1 message/s per webhook after a
    burst of 2, as Slack does."""
    with FakeSlack(clock=clock, rate_limit_per_channel=1.0, burst=2) as fake:
        yield fake


def webhooks(slack, *names: str, user: str = "alice") -> ChannelSet:
    """``user``'s channels: one webhook on the fake Slack per name (keys ``user/slack-0``, ...)."""
    destinations = [Destination(user, i, SlackChannel(type="slack", webhook_url=slack.webhook_url(name)))
                    for i, name in enumerate(names)]
    return ChannelSet(users={user: destinations})


def relay(store, channels, clock, **settings) -> Relay:
    """A relay as one process holds it (its own Relay object), on the shared store."""
    return Relay(store, channels, load_settings(**settings), clock=clock, group_interval=INTERVAL)


def add(store, clock, group: str, destination: str = "alice/slack-0", title: str = "a", n: int = 1) -> None:
    """Commit ``n`` outbox rows of one group, due now, as a logging process would."""
    rows = []
    for i in range(n):
        note = Notification(title=f"{title}{i}", text="x", level="ERROR", run_id="r", run_name=f"{title}{i}",
                            project="p", owner="alice", created_at=clock())
        rows.append({"alert_uid": f"{group}-{title}-{i}-{clock()}", "destination": destination, "user": "alice",
                     "group_key": group, "level": "ERROR", "payload": json.dumps(note.as_dict()), "state": "pending",
                     "attempts": 0, "created_at": clock(), "next_attempt_at": clock()})
    store.write_batch(Batch(deliveries=rows))


def rows(store) -> list:
    return outbox.listing(store, limit=100_000)


# -- the pure arithmetic ----------------------------------------------------------------------------

def test_a_pause_holds_whenever_the_bucket_is_asked():
    """A 429's pause read by a relay whose clock is behind (or asked early) stays a pause: it used
    to read as a fresh, full bucket."""
    from alerts.pipeline.ratelimit import TokenBucket

    bucket = TokenBucket(rate=1.0, burst=2.0)
    bucket.pause_until(20.0)
    assert bucket.next_at(0.0) == 20.0 and not bucket.ready(5.0) and not bucket.take(19.0)
    assert bucket.take(20.0) and not bucket.take(20.0)


def test_decide_waits_for_the_group_then_for_tokens():
    from alerts.pipeline.ratelimit import bucket_for, decide, user_bucket

    dest, user = bucket_for("slack"), user_bucket()
    assert decide(dest, user, None, 100.0, 30.0) is None  # a new group goes at once
    assert decide(dest, user, 100.0, 110.0, 30.0) == 130.0  # its next message after the interval
    assert [decide(dest, user, None, 110.0, 30.0) for _ in range(3)] == [None, None, 111.0]  # burst 2, then 1/s
    assert user.tokens == pytest.approx(20 - 1 + 10 / 30 - 2)  # 3 sent; 120 an hour refill


# -- one group, one pace, one cap: for every relay -----------------------------------------------

def test_two_relays_never_both_send_the_first_alert_of_a_group(store_backend, slack, clock):
    channels = webhooks(slack, "hook")
    first, second = relay(store_backend, channels, clock), relay(store_backend, channels, clock)
    add(store_backend, clock, "run-failed|sweep-1", title="trial-0-")
    assert first.run_once() == 1
    add(store_backend, clock, "run-failed|sweep-1", title="trial-1-")
    clock.advance(1)
    assert second.run_once() == 1  # claimed, but the group's first message went 1 s ago: it waits
    assert len(slack.messages("hook")) == 1
    waiting = [r for r in rows(store_backend) if r.state == "pending"]
    assert [r.next_attempt_at for r in waiting] == [START + INTERVAL] and waiting[0].attempts == 0
    clock.advance(INTERVAL - 1)
    second.run_once()
    assert len(slack.messages("hook")) == 2 and all(r.state == "sent" for r in rows(store_backend))


def test_rows_of_a_group_still_backing_off_ride_in_its_next_message(store_backend, slack, clock):
    """After an outage, the retry schedules of one group's rows drift apart (each row's backoff has its
    own jitter): the probe saw ten alerts of one group go out as 3 messages (1, then 5, then 10) instead
    of 2, because a row not yet due when a message went waited for a further group interval."""
    channels = webhooks(slack, "hook")
    sender = relay(store_backend, channels, clock)
    add(store_backend, clock, "run-failed|sweep-1", title="due-now-")
    add(store_backend, clock, "run-failed|sweep-1", title="backing-off-", n=3)
    from sqlalchemy import update

    from alerts.store.models import DeliveryRecord

    with store_backend.engine.begin() as conn:  # as three failed sends left them: due in 7, 12, 20 s
        for title, wait in (("backing-off-0", 7), ("backing-off-1", 12), ("backing-off-2", 20)):
            conn.execute(update(DeliveryRecord).where(DeliveryRecord.payload.like(f'%"title": "{title}"%'))
                         .values(next_attempt_at=START + wait, attempts=3))
    sender.run_once()
    (message,) = slack.messages("hook")
    assert "(+3 more)" in message["text"], message["text"]
    assert all(r.state == "sent" for r in rows(store_backend))  # all four in the one message


def test_the_pace_of_a_destination_is_shared_by_every_relay(store_backend, slack, clock):
    """Four processes, each with a new group for one webhook at the same second: Slack's burst (2)
    goes at once, the rest one a second, and Slack never answers 429."""
    channels = webhooks(slack, "hook")
    relays = [relay(store_backend, channels, clock) for _ in range(4)]
    for i, each in enumerate(relays):
        add(store_backend, clock, f"group-{i}")
        each.run_once()
    assert len(slack.messages("hook")) == 2
    for second in range(1, 4):
        clock.advance(1)
        for each in relays:
            each.run_once()
        assert len(slack.messages("hook")) == min(4, 2 + second)
    assert slack.count_429 == 0 and all(r.state == "sent" for r in rows(store_backend))


def test_a_429_pauses_the_destination_for_every_relay(store_backend, slack, clock):
    channels = webhooks(slack, "hook")
    first, second = relay(store_backend, channels, clock), relay(store_backend, channels, clock)
    slack.fail_next("hook", status=429, retry_after=20)
    add(store_backend, clock, "group-a")
    first.run_once()
    add(store_backend, clock, "group-b")
    clock.advance(1)
    second.run_once()  # another group, another process: Slack said to wait 20 s, for all of us
    assert slack.messages("hook") == [] and slack.count_429 == 1
    clock.advance(18)
    second.run_once()
    assert slack.messages("hook") == []
    clock.advance(1)
    first.run_once()  # one token at the end of the pause: one message, the other group a second later
    assert len(slack.messages("hook")) == 1
    clock.advance(1)
    second.run_once()
    assert len(slack.messages("hook")) == 2 and all(r.state == "sent" for r in rows(store_backend))
    assert slack.count_429 == 1


def test_a_failed_send_does_not_leave_its_group_looking_just_sent(store_backend, slack, clock):
    channels = webhooks(slack, "hook")
    first, second = relay(store_backend, channels, clock), relay(store_backend, channels, clock)
    slack.fail_next("hook", status=500)
    add(store_backend, clock, "g", title="first-")
    first.run_once()  # 500: retried later, the group never reached Slack
    add(store_backend, clock, "g", title="second-")
    clock.advance(0.5)
    second.run_once()  # so this one is the group's first message and goes at once
    (message,) = slack.messages("hook")
    assert message["text"].startswith("[ERROR] second-0")


def test_each_users_cap_is_shared_by_every_relay(store_backend, slack, clock):
    """Alice gets at most 20 messages at once (then one per 30 s) over all her channels, however
    many processes send them."""
    channels = webhooks(slack, "hook-0", "hook-1")
    relays = [relay(store_backend, channels, clock) for _ in range(2)]
    for i in range(24):
        add(store_backend, clock, f"group-{i}", destination=f"alice/slack-{i % 2}")
        relays[i % 2].run_once()
        clock.advance(0.5)
    assert len(slack.messages()) == 20 and slack.count_429 == 0
    assert sorted(r.state for r in rows(store_backend)).count("pending") == 4


# -- rows a relay cannot judge ---------------------------------------------------------------------

def test_a_relay_without_the_channel_leaves_the_row_to_one_that_has_it(store_backend, slack, clock, caplog):
    add(store_backend, clock, "g", destination="bob/slack-0")
    elsewhere = relay(store_backend, webhooks(slack, "alice-hook"), clock)  # another cwd: no bob.yaml
    caplog.set_level(logging.WARNING, logger="alerts")
    for _ in range(3):
        assert elsewhere.run_once() == 0
        clock.advance(20)  # past the maintenance period: it looks again, and says it once
    (row,) = rows(store_backend)
    assert row.state == "pending" and row.attempts == 0 and row.lease_owner is None
    said = [r.getMessage() for r in caplog.records if "bob/slack-0" in r.getMessage()]
    assert len(said) == 1 and "left for a relay that can send them" in said[0]
    relay(store_backend, webhooks(slack, "bob-hook", user="bob"), clock).run_once()
    assert len(slack.messages("bob-hook")) == 1 and rows(store_backend)[0].state == "sent"


def test_a_relay_without_smtp_settings_leaves_email_rows_pending(store_backend, clock, fake_smtp, caplog):
    channels = ChannelSet(users={"alice": [Destination("alice", 0, EmailChannel(type="email", to=["a@example.com"]))]})
    add(store_backend, clock, "g", destination="alice/email-0")
    caplog.set_level(logging.WARNING, logger="alerts")
    unset = relay(store_backend, channels, clock, smtp_host="")
    assert unset.run_once() == 1  # claimed, found unsendable here, given back untouched
    assert unset.run_once() == 0  # and not claimed again by this relay
    (row,) = rows(store_backend)
    assert row.state == "pending" and row.attempts == 0 and row.lease_owner is None
    assert sum("ALERTS_SMTP_HOST is not set" in r.getMessage() for r in caplog.records) == 1
    configured = relay(store_backend, channels, clock, smtp_host=fake_smtp.host, smtp_port=fake_smtp.port,
                       smtp_starttls=True, smtp_ca_file=fake_smtp.ca_path, smtp_username=fake_smtp.username,
                       smtp_password=fake_smtp.password)
    configured.run_once()
    assert rows(store_backend)[0].state == "sent" and len(fake_smtp.messages) == 1


# -- the exit drain ----------------------------------------------------------------------------------

def test_a_relay_at_exit_keeps_the_group_interval(store_backend, slack, clock):
    channels = webhooks(slack, "hook")
    add(store_backend, clock, "g", title="first-")
    relay(store_backend, channels, clock).run_once()
    add(store_backend, clock, "g", title="second-")
    left = relay(store_backend, channels, clock).drain(timeout=1.0)  # another process exits now
    assert left == 1 and len(slack.messages("hook")) == 1
    (waiting,) = [r for r in rows(store_backend) if r.state == "pending"]
    assert waiting.next_attempt_at == START + INTERVAL  # for the follow-up, not a message of its own


# -- slow webhooks -------------------------------------------------------------------------------------

def test_different_destinations_are_sent_to_at_once(store_backend, clock):
    """8 webhooks that each take 2 s to answer: the 8 requests are all made before the first answer
    comes (one at a time, the 8th would wait 14 s)."""
    with FakeSlack() as slack:  # its clock is the real one: request times are real
        names = [f"hook-{i}" for i in range(8)]
        slack.set_delay(2.0)
        channels = webhooks(slack, *names)
        for i in range(8):
            add(store_backend, clock, "g", destination=f"alice/slack-{i}")
        relay(store_backend, channels, clock).run_once()
        arrived = sorted(r.time for r in slack.requests)
        assert len(arrived) == 8 and arrived[-1] < arrived[0] + 2.0
        assert all(len(slack.messages(name)) == 1 for name in names)
        assert all(r.state == "sent" for r in rows(store_backend))


def test_a_pass_that_outlives_its_lease_keeps_its_rows(store_backend):
    """A send slower than the lease: the pass renews it, so another relay polling meanwhile never
    claims the rows and sends them again."""
    with FakeSlack() as slack:
        slack.set_delay(2.5, "hook")
        channels = webhooks(slack, "hook")
        real = FakeClock(start=time.time())
        add(store_backend, real, "g")
        slow = Relay(store_backend, channels, load_settings(), group_interval=INTERVAL, lease=1.0)
        other = Relay(store_backend, channels, load_settings(), group_interval=INTERVAL, lease=1.0)
        sending = threading.Thread(target=slow.run_once)
        sending.start()
        slack.wait_for_messages(1, timeout=30)  # posted; its answer comes 2.5 s later
        claimed = 0
        while sending.is_alive():
            claimed += other.run_once()  # a relay in another process, polling
            time.sleep(0.1)
        sending.join()
        assert claimed == 0 and len(slack.requests) == 1
        assert [r.state for r in rows(store_backend)] == ["sent"]


# -- real processes on one store -------------------------------------------------------------------

SWEEP_TRIAL = """
    import sys
    import alerts
    run = alerts.init(project="sweep", group="sweep-1", name=f"trial-{sys.argv[1]}")
    run.log({"acc": 0.1})
    print("ready", flush=True)
    sys.stdin.readline()
    run.finish(exit_code=1)  # the run-failed rule fires
    print("failed", flush=True)
    sys.stdin.readline()  # alive until the test has seen the follow-up
"""

DDP_RANK = """
    import sys
    import alerts
    run = alerts.init(project="ddp", group="ddp-1", name=f"rank-{sys.argv[1]}")
    for step in range(3):
        run.log({"loss": 1.0 / (step + 1)})
    print("ready", flush=True)
    sys.stdin.readline()
    run.log({"loss": float("nan")})  # every rank at the same step: loss-not-finite fires
    print("nan", flush=True)
    sys.stdin.readline()
"""

PROCESS_INTERVAL = 10.0  # ALERTS_GROUP_INTERVAL of the children: the follow-up comes 10 s after the first


def wait_until_all_sent(store, expected: int, timeout: float = 180.0) -> list:
    """The outbox once ``expected`` rows are there and none is pending (bounded: the children work)."""
    deadline = time.monotonic() + timeout
    while True:
        found = rows(store)
        if len(found) >= expected and all(r.state != "pending" for r in found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not all sent within {timeout}s: {sorted(r.state for r in found)}")
        time.sleep(0.2)


def run_together(spawn, tmp_path, store, slack, script: str, n: int, said: str) -> list:
    """``n`` processes of ``script`` on ``store``, each sending through its own relay to the fake
    Slack; all are told to go at once. Returns the outbox once every row is sent."""
    from delivery.test_delivery import channel_file

    folder = tmp_path / "channels"
    channel_file(folder, body=f"  - type: slack\n    webhook_url: {slack.webhook_url('team')}\n")
    env = {"ALERTS_DATABASE_URL": store.url, "ALERTS_CHANNELS": str(folder), "ALERTS_RULES": str(REPO / "rules"),
           "ALERTS_SLACK_WEBHOOK_HOSTS": "127.0.0.1", "ALERTS_GROUP_INTERVAL": str(PROCESS_INTERVAL)}
    children = [spawn(script, str(i), env=env) for i in range(n)]
    for child in children:
        child.expect("ready")
    for child in children:
        child.send("go\n")
    for child in children:
        child.expect(said)
    sent = wait_until_all_sent(store, n)
    for child in children:
        child.send("exit\n")
    for child in children:
        assert child.wait() == 0, child.stderr
    return sent


def carriers(sent: list) -> dict[int, set]:
    """The alerts each message carried: {id of the row that carried it: alert uids}."""
    by: dict[int, set] = {}
    for row in sent:
        by.setdefault(row.carried_by or row.id, set()).add(row.alert_uid)
    return by


def test_a_sweep_of_12_failing_runs_in_12_processes_is_at_most_2_messages(store_backend, spawn, tmp_path):
    with FakeSlack(rate_limit_per_channel=1.0, burst=2) as slack:
        sent = run_together(spawn, tmp_path, store_backend, slack, SWEEP_TRIAL, 12, "failed")
        assert [r.state for r in sent] == ["sent"] * 12
        assert {json.loads(r.payload)["run_name"] for r in sent} == {f"trial-{i}" for i in range(12)}
        messages = slack.messages("team")
        assert 1 <= len(messages) <= 2 and len(carriers(sent)) == len(messages)  # all 12 ride in them
        assert slack.count_429 == 0


def test_8_ddp_ranks_with_nan_at_one_step_are_at_most_2_messages(store_backend, spawn, tmp_path):
    with FakeSlack(rate_limit_per_channel=1.0, burst=2) as slack:
        sent = run_together(spawn, tmp_path, store_backend, slack, DDP_RANK, 8, "nan")
        assert [r.state for r in sent] == ["sent"] * 8
        assert {json.loads(r.payload)["rule"] for r in sent} == {"loss-not-finite"}
        messages = slack.messages("team")
        assert 1 <= len(messages) <= 2 and len(carriers(sent)) == len(messages)
        assert slack.count_429 == 0
