"""Nothing waits for the next run: what a script leaves pending at exit is sent by a detached relay.

End to end with real processes: a script (a child interpreter) raises alerts against the fake Slack
on 127.0.0.1 and exits; the detached ``alerts relay`` it starts (one per store, in its own session,
logging to ALERTS_DIR/relay.log) sends them on their schedule and exits by itself. The relay's loop
and the store's lease are also driven in-process on a fake clock. Every relay a test starts is killed
after it (``no_detached_relay_left`` in tests/conftest.py).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import alerts as wandb
from alerts.clock import FakeClock
from alerts.delivery import detached, outbox
from alerts.delivery.relay import Relay
from alerts.settings import load_settings
from alerts.store import leases
from alerts.store.db import open_store
from delivery.test_delivery import channel_file
from conftest import relays_running_for as _relays_running_for
from fakes.slack import FakeSlack

WAIT = 240.0  # a bound for giving up on a loaded 2-core machine, not a timing assertion


def _handed_to(stderr: str) -> int:
    """The pid of the detached relay a script says it started."""
    return int(re.search(r"a detached relay \(pid (\d+)\) was started", stderr).group(1))


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a relay this test process started and has not reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def channels(tmp_path, slack, monkeypatch):
    """Alice's channels: one webhook on the fake Slack. The environment a script inherits."""
    folder = tmp_path / "channels"
    channel_file(folder, body=f"  - type: slack\n    webhook_url: {slack.webhook_url('alice-hook')}\n")
    monkeypatch.setenv("ALERTS_CHANNELS", str(folder))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    return folder


def wait_until(predicate, what: str, timeout: float = WAIT, every: float = 0.5):
    """Poll ``predicate`` until true, or fail naming ``what`` (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f}s: {what}")
        time.sleep(every)


def carried(messages: list[dict]) -> int:
    """How many alerts the Slack messages carried ("title (+N more)" carries N + 1)."""
    return sum(int(m["text"].split("(+")[1].split(" ")[0]) + 1 if "(+" in m["text"] else 1 for m in messages)


def rows():
    return outbox.listing(open_store(load_settings().resolved_database_url()))


ALERTS_THEN_EXIT = """
    import sys, time
    import alerts as wandb
    wandb.init(project="nightly")
    for i in range(int(sys.argv[1])):
        wandb.alert(title=f"job alert {i}", text="the job died at 3 a.m.")
    time.sleep(float(sys.argv[2]))
"""


def test_slack_500_for_60s_every_alert_arrives_once_with_nothing_of_the_user_running(channels, slack, run_script,
                                                                                    store_dir):
    slack.fail_for(60, status=500)
    started = time.monotonic()
    # run_script captures the script's output, as a job runner does: it returns when the script ends.
    result = run_script(ALERTS_THEN_EXIT, "8", "1", timeout=60)
    assert result.returncode == 0, result.stderr
    relay_pid = _handed_to(result.stderr)
    assert _alive(relay_pid)  # the script is gone; its relay still runs, sending when Slack recovers
    wait_until(lambda: carried(slack.messages("alice-hook")) >= 8, "8 alerts delivered")
    assert time.monotonic() - started < 180  # every alert within 3 minutes (the must-show bound)
    wait_until(lambda: not _alive(relay_pid), "the detached relay exits by itself")
    assert carried(slack.messages("alice-hook")) == 8  # once each
    assert sorted(r.state for r in rows()) == ["sent"] * 8
    assert slack.count(status=500) >= 1  # it did fail first
    log = (store_dir / "relay.log").read_text()
    assert "nothing pending; detached relay" in log and "exits" in log


def test_a_job_runner_capturing_output_and_waiting_for_its_process_group_returns_when_the_script_ends(
        channels, slack, tmp_path, store_dir):
    slack.fail_for(600, status=500)
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(ALERTS_THEN_EXIT), encoding="utf-8")
    # The runner puts the job in a process group of its own and waits for the group to empty.
    job = subprocess.Popen([sys.executable, str(script), "2", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           start_new_session=True, env={**os.environ, "ALERTS_DIR": str(store_dir)})
    out, err = job.communicate(timeout=60)  # EOF on both pipes: nothing else holds them
    assert job.returncode == 0, err
    relay_pid = _handed_to(err.decode())
    assert _alive(relay_pid)
    assert os.getsid(relay_pid) == relay_pid and os.getpgid(relay_pid) != job.pid  # not in the job's group
    group_left = subprocess.run(["pgrep", "-g", str(job.pid)], capture_output=True, text=True).stdout.split()
    assert group_left == []
    assert (Path(f"/proc/{relay_pid}/fd/0").resolve() == Path("/dev/null")
            and Path(f"/proc/{relay_pid}/fd/2").resolve() == store_dir / "relay.log")


def test_scripts_with_other_channel_files_each_get_a_relay_that_can_send_their_rows(channels, slack, run_script,
                                                                                    tmp_path, store_dir):
    """Alice's script and Bob's (other ALERTS_CHANNELS) exit on one store while Slack fails: Bob's row
    was left to the relay Alice's exit started, which cannot send it, and Bob was told it would be."""
    slack.fail_for(600, status=500)  # until both scripts have exited, however slow the machine is
    bob_channels = tmp_path / "bob-channels"
    bob_channels.mkdir()
    (bob_channels / "bob.yaml").write_text(
        f"user: bob\nchannels:\n  - type: slack\n    webhook_url: {slack.webhook_url('bob-hook')}\n", encoding="utf-8")
    alice = run_script(ALERTS_THEN_EXIT, "1", "0", timeout=60)
    bob = run_script(ALERTS_THEN_EXIT, "1", "0", env={"ALERTS_USER": "bob", "ALERTS_CHANNELS": str(bob_channels)},
                     timeout=60)
    assert alice.returncode == 0 and bob.returncode == 0, alice.stderr + bob.stderr
    pids = {_handed_to(alice.stderr), _handed_to(bob.stderr)}  # each started one: two relays
    slack.clear_failures()
    wait_until(lambda: slack.messages("alice-hook") and slack.messages("bob-hook"), "both alerts delivered")
    for pid in pids:
        wait_until(lambda: not _alive(pid), "each detached relay exits by itself")
    assert sorted(r.state for r in rows()) == ["sent", "sent"]


def test_two_scripts_exiting_at_once_start_one_detached_relay(channels, slack, spawn, store_dir):
    slack.fail_for(600, status=500)
    source = """
        import sys
        import alerts as wandb
        wandb.init(project="sweep")
        wandb.alert(title=f"trial {sys.argv[1]} failed", text="x")
        print("ready", flush=True)
        sys.stdin.readline()
    """
    children = [spawn(source, str(i)) for i in range(2)]
    for child in children:
        child.expect("ready")
    for child in children:  # both exit together
        child.send("go\n")
    for child in children:
        assert child.wait() == 0, child.stderr
    assert len(_relays_running_for(store_dir)) == 1
    said = sorted("was started" in c.stderr for c in children)
    assert said == [False, True], [c.stderr for c in children]
    assert sum("already runs" in c.stderr for c in children) == 1


def test_alerts_relay_0_starts_no_detached_relay(channels, slack, run_script, store_dir):
    slack.fail_for(600, status=500)
    result = run_script(ALERTS_THEN_EXIT, "2", "0", env={"ALERTS_RELAY": "0"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not (store_dir / "relay.log").exists()
    assert leases.read(open_store(load_settings().resolved_database_url()), detached.lease_name(load_settings())) is None
    assert sorted(r.state for r in rows()) == ["pending", "pending"]  # left for `alerts relay`
    assert slack.requests == []


class HungServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung webhook or SMTP)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


ALERTS = [sys.executable, "-c", "import sys; from alerts.cli import main; sys.exit(main())"]  # the command
EXIT_BOUND = 10.0  # the exit drain's wait (README)


def test_a_hung_webhook_and_smtp_server_do_not_hold_the_script_past_the_exit_bound(tmp_path, run_script, store_dir):
    hung = HungServer()
    try:
        folder = tmp_path / "channels"
        channel_file(folder, body=f"""\
          - type: slack
            webhook_url: http://127.0.0.1:{hung.port}/services/T0/B0/one
          - type: slack
            webhook_url: http://127.0.0.1:{hung.port}/services/T0/B0/two
          - type: email
            to: alice@example.com
        """)
        env = {"ALERTS_CHANNELS": str(folder), "ALERTS_SLACK_WEBHOOK_HOSTS": "127.0.0.1",
               "ALERTS_SMTP_HOST": "127.0.0.1", "ALERTS_SMTP_PORT": str(hung.port)}
        source = """
            import sys, time
            import alerts as wandb
            wandb.init(project="hung")
            wandb.alert(title="job alert", text="x")
            print(time.monotonic(), flush=True)
        """
        result = run_script(source, env=env, timeout=120)
        ended = time.monotonic()
        assert result.returncode == 0, result.stderr
        # From the script's last line to the process's end: the exit bound, plus the interpreter's
        # own shutdown. (Before, each destination was tried in turn for its client's whole timeout.)
        assert ended - float(result.stdout.split()[-1]) < EXIT_BOUND + 8, result.stderr
        assert "a detached relay (pid" in result.stderr
    finally:
        hung.close()


def test_alerts_relay_by_hand_says_what_is_left_and_when_and_hands_it_over(channels, slack, run_script, store_dir):
    result = run_script(ALERTS_THEN_EXIT, "1", "0", env={"ALERTS_RELAY": "0"}, timeout=60)
    assert result.returncode == 0, result.stderr
    store = open_store(load_settings().resolved_database_url())
    (row,) = outbox.listing(store)
    due = time.time() + 20  # backing off: due after the relay's timeout (the wait leaves room for a loaded machine)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE deliveries SET next_attempt_at = ?", (due,))
    cmd = subprocess.run([*ALERTS, "relay", "--timeout", "2"], capture_output=True,
                         text=True, timeout=60, env={**os.environ, "ALERTS_DIR": str(store_dir)})
    assert cmd.returncode == 3, cmd.stderr
    assert "1 still pending (next due " in cmd.stdout and " in " in cmd.stdout
    assert "hand-over: a detached relay (pid" in cmd.stdout
    listing = subprocess.run([*ALERTS, "deliveries"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "ALERTS_DIR": str(store_dir)})
    if not slack.messages("alice-hook"):  # still due: a loaded machine may have spent the 20 s already
        # "(pid N ..." once the relay has taken its lease over, "(starting ..." while it is starting up
        assert "pending: 1" in listing.stdout and "relay: detached relay running (" in listing.stdout, \
            listing.stdout
    # Nothing else run by hand: it arrives once due, and the relay exits by itself.
    relay_pid = int(re.search(r"detached relay \(pid (\d+)\)", cmd.stdout).group(1))
    wait_until(lambda: len(slack.messages("alice-hook")) == 1, "the row sent when due")
    wait_until(lambda: not _alive(relay_pid), "the detached relay exits by itself")
    listing = subprocess.run([*ALERTS, "deliveries"], capture_output=True, text=True,
                             timeout=60, env={**os.environ, "ALERTS_DIR": str(store_dir)})
    assert "pending: 0; relay: no detached relay running" in listing.stdout


def test_a_follower_deferred_by_the_group_interval_is_sent_after_the_script_exits(channels, slack, run_script,
                                                                                  store_dir):
    source = """
        import os, sys, time
        import alerts as wandb
        wandb.init(project="p")
        wandb.alert(title="first", text="x")
        while not os.path.exists(sys.argv[1]):  # the test says when the first message has arrived
            time.sleep(0.05)
        wandb.alert(title="follower", text="x")  # within the group interval: deferred
        wandb.finish()
    """
    first_sent = store_dir.parent / "first-sent"
    stop = threading.Event()

    def mark_first_sent():
        while not stop.is_set() and not slack.messages("alice-hook"):
            time.sleep(0.05)
        first_sent.write_text("1")

    threading.Thread(target=mark_first_sent, daemon=True).start()
    try:
        result = run_script(source, str(first_sent), timeout=90)
    finally:
        stop.set()
    assert result.returncode == 0, result.stderr
    assert "not sent yet: a detached relay" in result.stderr  # handed over, not left for the next run
    wait_until(lambda: len(slack.messages("alice-hook")) == 2, "the follower delivered", timeout=120)
    assert [m["text"].split(":")[0] for m in slack.messages("alice-hook")] == ["[INFO] first", "[INFO] follower"]


# -- the relay's loop and the lease, in-process on a fake clock ------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock(start=1_800_000_000.0)
    monkeypatch.setattr("alerts.clock.now", fake)
    return fake


def test_serve_sends_each_row_when_due_sleeping_in_between_and_exits_when_none_is_pending(channels, slack, clock,
                                                                                         monkeypatch):
    monkeypatch.setenv("ALERTS_RELAY", "0")
    wandb.init(project="p")
    wandb.alert(title="soon", text="x")
    wandb.init(project="q", reinit=True)  # another group
    wandb.alert(title="later", text="x")
    wandb.finish()
    settings = load_settings()
    store = open_store(settings.resolved_database_url())
    due = {"soon": clock() + 5, "later": clock() + 140}
    for row in outbox.listing(store):
        title = __import__("json").loads(row.payload)["title"]
        with store.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE deliveries SET next_attempt_at = ? WHERE id = ?", (due[title], row.id))
    from alerts.channels.config import load_channels

    relay = Relay(store, load_channels([settings.channels], webhook_hosts=["127.0.0.1"]), settings, clock=clock)
    slept, sent_at = [], {}

    def note_sent():  # the clock stands still during a pass: what was sent, was sent at clock()
        for message in slack.messages("alice-hook"):
            sent_at.setdefault(message["text"].split(":")[0], clock())

    def sleep(seconds):
        note_sent()
        slept.append(seconds)
        clock.advance(seconds)

    assert detached.serve(store, relay, clock=clock, sleep=sleep)
    note_sent()
    assert set(sent_at) == {"[INFO] soon", "[INFO] later"}
    assert sent_at["[INFO] soon"] == due["soon"] and sent_at["[INFO] later"] == due["later"]  # not before, not late
    assert max(slept) <= detached.MAX_SLEEP  # new rows from live processes are looked for meanwhile
    assert sorted(r.state for r in outbox.listing(store)) == ["sent", "sent"]
    assert leases.read(store, detached.lease_name(load_settings())) is None  # released on the way out


def test_serve_exits_when_only_rows_it_cannot_judge_are_left(channels, slack, clock, monkeypatch, tmp_path):
    """A relay started with other channel files leaves alice's row pending (it cannot judge it) and
    must not stay up for the row's 24 h expiry because of it."""
    monkeypatch.setenv("ALERTS_RELAY", "0")
    wandb.init(project="p")
    wandb.alert(title="alice's", text="x")
    wandb.finish()
    settings = load_settings()
    store = open_store(settings.resolved_database_url())
    from alerts.channels.config import load_channels

    (tmp_path / "other").mkdir()
    relay = Relay(store, load_channels([tmp_path / "other"], webhook_hosts=["127.0.0.1"]), settings, clock=clock)
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) > 50:
            raise AssertionError("the relay keeps waiting for a row it can never send")
        clock.advance(seconds)

    assert detached.serve(store, relay, clock=clock, sleep=sleep)
    assert [r.state for r in outbox.listing(store)] == ["pending"]  # left for a relay that can judge it
    assert slack.messages("alice-hook") == []


def test_serve_leaves_the_store_to_the_relay_that_holds_its_lease(channels, clock):
    settings = load_settings()
    store = open_store(settings.resolved_database_url())
    other = leases.Holder(name="otherhost:4242:relay-x", host="otherhost", pid=4242)
    assert leases.acquire(store, detached.lease_name(load_settings()), other, clock(), 60, lambda pid: True)
    from alerts.channels.config import load_channels

    relay = Relay(store, load_channels([settings.channels], webhook_hosts=["127.0.0.1"]), settings, clock=clock)
    assert not detached.serve(store, relay, clock=clock, sleep=clock.advance)
    assert relay.counters.alerts_delivered_total == 0
    assert detached.hand_over(store, settings).started is False  # a script at exit starts none either
    assert detached._started == []


def test_the_lease_is_held_by_one_process_freed_by_time_or_by_its_holders_death(store_backend):
    now = 1_800_000_000.0
    a = leases.Holder(name="h:1:a", host="h", pid=1)
    b = leases.Holder(name="h:2:b", host="h", pid=2)
    alive = {1: True, 2: True}
    assert leases.acquire(store_backend, "relay", a, now, 60, alive.get)
    assert not leases.acquire(store_backend, "relay", b, now, 60, alive.get)
    assert leases.renew(store_backend, "relay", a, now + 50, 60)
    assert not leases.acquire(store_backend, "relay", b, now + 100, 60, alive.get)  # renewed: still a's
    assert leases.acquire(store_backend, "relay", b, now + 111, 60, alive.get)  # ran out: b takes it
    assert not leases.renew(store_backend, "relay", a, now + 112, 60)  # a learns it lost it
    alive[2] = False
    assert leases.acquire(store_backend, "relay", a, now + 113, 60, alive.get)  # b died on this host: at once
    starter = leases.Holder(name="h:0:start", host="h")
    leases.release(store_backend, "relay", a)
    assert leases.acquire(store_backend, "relay", starter, now + 114, 30, alive.get)
    assert leases.take_over(store_backend, "relay", "h:0:start", b, now + 115, 60)
    assert leases.read(store_backend, "relay").pid == 2


@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
def test_on_postgresql_the_detached_relay_sends_what_the_script_left(channels, slack, run_script, store_backend,
                                                                     store_dir):
    slack.fail_for(600, status=500)  # until the script has exited: it hands over
    result = run_script(ALERTS_THEN_EXIT, "3", "0", env={"ALERTS_DATABASE_URL": store_backend.url}, timeout=60)
    assert result.returncode == 0, result.stderr
    relay_pid = _handed_to(result.stderr)
    slack.clear_failures()
    assert leases.read(store_backend, detached.lease_name(load_settings())) is not None  # the lease row lives in PostgreSQL
    wait_until(lambda: carried(slack.messages("alice-hook")) == 3, "3 alerts delivered from PostgreSQL")
    wait_until(lambda: not _alive(relay_pid), "the detached relay exits by itself")
    assert sorted(r.state for r in outbox.listing(store_backend)) == ["sent"] * 3
    assert leases.read(store_backend, detached.lease_name(load_settings())) is None
    assert not (store_dir / "alerts.db").exists()  # nothing went to SQLite
