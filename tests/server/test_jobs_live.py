"""The jobs in real ``alerts serve`` processes: the server relays what scripts on its store leave (no
detached relay is started), SIGHUP reloads the rules, and two replicas on one PostgreSQL database,
one killed with SIGKILL in the middle of an alert storm: every alert is delivered, none twice, and
the jobs go on in the survivor.

Waits are bounds for giving up on a loaded 2-core machine, never timing assertions.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.delivery import detached, outbox
from alerts.settings import load_settings
from alerts.store import leases
from alerts.store.db import open_store
from conftest import relays_running_for
from fakes.slack import FakeSlack
from server.jobkit import WAIT, add_run, carried, crashed_rule, slack_channels, wait_until

USERS = ("alice", "bob", "carol", "dave")


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def env(tmp_path, slack, monkeypatch):
    """Channels for four users (a webhook each on the fake Slack), a rule for crashed runs; what the
    servers and the scripts inherit."""
    monkeypatch.setenv("ALERTS_CHANNELS", str(slack_channels(tmp_path / "channels", slack, USERS)))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    monkeypatch.setenv("ALERTS_RULES", str(crashed_rule(tmp_path / "rules")))
    monkeypatch.setenv("ALERTS_GROUP_INTERVAL", "1")


def relay_lease(store):
    return leases.read(store, detached.lease_name(load_settings()))


def hook_messages(slack, user: str, prefix: str = "") -> list[dict]:
    return [m for m in slack.messages(f"{user}-hook") if prefix in m["text"]]


def scrape(url: str) -> dict:
    text = httpx.get(url + "/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


ALERTS_THEN_EXIT = """
    import sys
    import alerts as wandb
    wandb.init(project="nightly")
    for i in range(int(sys.argv[1])):
        wandb.alert(title=f"job alert {i}", text="the job died at 3 a.m.")
"""


def test_the_server_sends_what_a_script_leaves_and_the_script_starts_no_detached_relay(env, live_server, slack,
                                                                                      run_script, store_dir):
    server = live_server()
    store = open_store(load_settings().resolved_database_url())
    wait_until(lambda: relay_lease(store), "the server takes the store's relay lease")
    slack.fail_for(3600, status=500)  # Slack is down while the script runs and exits
    result = run_script(ALERTS_THEN_EXIT, "3", timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"the alert server (pid {server.proc.pid} on" in result.stderr
    assert relays_running_for(store_dir) == [] and not (store_dir / "relay.log").exists()
    slack.clear_failures()  # Slack is back: the server sends them, the script long gone
    wait_until(lambda: all(r.state == "sent" for r in outbox.listing(store)), "every row sent", WAIT)
    assert carried(hook_messages(slack, "alice")) == 3  # each once
    assert slack.count(status=500) >= 1  # it did fail first


def test_sighup_reloads_the_rules_and_the_server_serves_on(env, live_server, tmp_path):
    server = live_server()
    (tmp_path / "rules" / "more.yaml").write_text(
        "rules:\n  - {name: quiet, kind: stalled, after: 10m}\n  - {name: failed, kind: run_state, states: [failed]}\n")
    server.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "rules reloaded from" in server.output(), "the reload logged")
    assert "(3 rules)" in server.output()
    assert server.proc.poll() is None and httpx.get(server.url + "/healthz").status_code == 200


STORM = """
    import sys, time
    import alerts as wandb
    wandb.init(project=sys.argv[1])
    print("started", flush=True)
    for i in range(int(sys.argv[2])):
        wandb.alert(title=f"storm {sys.argv[1]} {i}", text="node 7 is on fire")
        time.sleep(0.15)
"""
PER_USER = 30


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_two_replicas_one_killed_mid_storm_deliver_every_alert_once_and_jobs_go_on(env, backend_url, live_server,
                                                                                   slack, spawn):
    store = open_store(backend_url)
    replicas = [live_server(), live_server()]
    lease = wait_until(lambda: relay_lease(store), "a replica takes the relay lease")
    leader = next(r for r in replicas if r.proc.pid == lease.pid)
    survivor = next(r for r in replicas if r is not leader)

    # The storm: four users' scripts raise alerts without a relay of their own (ALERTS_RELAY=0), so
    # every message is the replicas' doing.
    producers = [spawn(STORM, user, str(PER_USER), env={"ALERTS_USER": user, "ALERTS_RELAY": "0"}) for user in USERS]
    for producer in producers:
        producer.expect("started")
    wait_until(lambda: len(slack.messages()) >= 4, "the leader sends the first messages")
    # Kill it while Slack answers 500: a send in flight then cannot have reached anyone, so the
    # count below must be exact. (Killed between Slack's 200 and the row marked sent, a message
    # can go twice, at most once: the README says so.)
    slack.fail_for(3600, status=500)
    failed_before = slack.count(status=500)
    wait_until(lambda: slack.count(status=500) > failed_before, "the leader meets the outage")
    assert any(p.proc.poll() is None for p in producers)  # mid-storm: alerts are still being raised
    leader.stop(signal.SIGKILL)
    slack.clear_failures()
    for producer in producers:
        assert producer.wait() == 0, producer.stderr

    total = PER_USER * len(USERS)
    wait_until(lambda: sum(1 for r in outbox.listing(store, limit=10_000) if r.state == "sent") == total,
               f"all {total} alerts sent", WAIT)
    for user in USERS:
        assert carried(hook_messages(slack, user, "storm")) == PER_USER, user  # every alert, none twice
    assert relay_lease(store).pid == survivor.proc.pid

    # The jobs go on in the survivor: a run lost on another host is found crashed and its owner told.
    now = time.time()
    add_run(store, now - 3600, owner="carol", name="lost-on-node-9", heartbeat_at=now - 3600)
    wait_until(lambda: hook_messages(slack, "carol", "lost-on-node-9 crashed"), "the crash notified", WAIT)
    metrics = scrape(survivor.url)
    for job in ("relay", "crashed"):
        assert metrics[("alerts_job_leader", (("job", job),))] == 1, job
    assert metrics[("alerts_notifications_total", (("integration", "slack"),))] >= 1
    assert metrics[("alerts_job_runs_total", (("job", "ticks"), ("outcome", "ran")))] >= 1
    assert "Traceback" not in survivor.output()
