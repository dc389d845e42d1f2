"""A group's follow-up message carries the incident: how many runs are in it, counting the runs its
earlier message already named, and which ("12 runs of sweep-1 failed: trial-0, ... +2 more"), in
Slack (header, section, text fallback) and email (subject, body), escaped as everything else."""

from __future__ import annotations

import json

import alerts as wandb
from alerts.channels.base import Notification
from alerts.pipeline.incident import current, summarize
from delivery.test_delivery import channel_file, clock, make_relay, setup, slack, states  # noqa: F401 (fixtures)
from delivery.test_email_and_outbox import mail_setup  # noqa: F401 (fixture)


def note(i: int, title: str = "{name} failed", group: str | None = "sweep-1", rule: str | None = "run-failed",
         name: str | None = None) -> Notification:
    name = name or f"trial-{i}"
    return Notification(title=title.format(name=name), text="x", level="ERROR", run_id=f"id{i}", run_name=name,
                        project="vision", owner="alice", created_at=0.0, source="rule", rule=rule, run_group=group)


def test_twelve_runs_that_failed_alike_are_one_phrase_counting_them_all():
    incident = summarize([note(i) for i in range(1, 12)], earlier=[note(0)])
    assert incident.line() == ("12 runs of sweep-1 failed: trial-0, trial-1, trial-2, trial-3, trial-4, "
                               "trial-5, trial-6, trial-7, trial-8, trial-9 +2 more")
    assert incident.alerts == 12 and incident.many_runs


def test_the_phrase_keeps_what_the_titles_share_and_falls_back_to_the_rule_or_a_count():
    ranks = [note(i, title="train/loss is nan in {name}", name=f"rank-{i}", group="ddp-7") for i in range(8)]
    assert summarize(ranks).headline == "train/loss is nan in 8 runs of ddp-7"
    mixed = [note(0, title="{name} failed"), note(1, title="{name} crashed")]
    assert summarize(mixed).headline == "run-failed: 2 runs of sweep-1"
    explicit = [note(0, title="low accuracy", rule=None, group=None), note(1, title="oom", rule=None, group=None)]
    assert summarize(explicit).headline == "2 alerts: 2 runs in vision"
    # a run named like a word of the title takes out only that word, not every "a"
    assert summarize([note(0, title="a is at {name}", name="a"), note(1, title="a is at {name}", name="b")]
                     ).headline == "run-failed: 2 runs of sweep-1"
    one_run = summarize([note(0), note(0, title="{name} stalled")])
    assert not one_run.many_runs and one_run.runs == ("trial-0",)


def test_the_incident_is_the_messages_less_than_the_gap_apart():
    sent = [(100.0, note(0)), (400.0, note(1)), (420.0, note(2)), (450.0, note(3))]
    assert [n.run_name for n in current(sent, now=480.0, gap=300.0)] == ["trial-1", "trial-2", "trial-3"]
    assert current(sent, now=800.0, gap=300.0) == []  # quiet for the gap: a new incident


def run_fails(i: int, group: str = "sweep-1", name: str | None = None) -> None:
    wandb.init(project="vision", group=group, name=name or f"trial-{i}")
    wandb.alert(title=f"{wandb.run.name} failed", text="exit code 1", level="ERROR")
    wandb.finish()


def test_a_slack_follow_up_counts_the_runs_of_the_first_message_too(setup, slack, clock):
    relay = make_relay(clock)
    run_fails(0)
    relay.run_once()  # the first alert of the group goes at once, about its run
    run_fails(1, name="<!channel> & co")  # a run's name is user text
    for i in range(2, 12):
        run_fails(i)
    clock.advance(5)
    relay.run_once()  # within the group interval: they wait
    clock.advance(30)
    relay.run_once()
    first, follow_up = slack.messages()
    assert first["text"] == "[ERROR] trial-0 failed: exit code 1"
    assert follow_up["text"] == ("[ERROR] 12 runs of sweep-1 failed: trial-0, &lt;!channel&gt; &amp; co, trial-2, "
                                 "trial-3, trial-4, trial-5, trial-6, trial-7, trial-8, trial-9 +2 more")
    blocks = follow_up["attachments"][0]["blocks"]
    assert blocks[0]["text"]["text"] == "[ERROR] 12 runs of sweep-1 failed"
    assert blocks[1]["text"]["text"].startswith("*12 runs:* trial-0, &lt;!channel&gt; &amp; co, trial-2,")
    assert "<!channel>" not in json.dumps(follow_up)
    assert states() == ["sent"] * 12


def test_an_email_follow_up_names_the_incident_in_its_subject_and_body(mail_setup, fake_smtp, clock):
    channel_file(mail_setup, body="  - type: email\n    to: alice@example.com\n")
    relay = make_relay(clock)
    run_fails(0, group="sweep\r\nBcc: eve@example.com")
    relay.run_once()
    for i in range(1, 3):
        run_fails(i, group="sweep\r\nBcc: eve@example.com")
    clock.advance(31)
    relay.run_once()
    first, follow_up = fake_smtp.messages
    assert first.message["Subject"] == "[ERROR] trial-0 failed"
    assert follow_up.message["Subject"] == "[ERROR] 3 runs of sweep Bcc: eve@example.com failed"
    assert follow_up.message["Bcc"] is None and follow_up.rcpt_tos == ["alice@example.com"]
    body = follow_up.message.get_body(("plain",)).get_content()
    assert body.startswith("3 runs of sweep") and "failed: trial-0, trial-1, trial-2\r\n" in body
