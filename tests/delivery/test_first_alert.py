"""``alert()`` is durable when it returns, and the first alert of a process does not wait for delivery
to start up.

Real processes on a real store (SQLite, and PostgreSQL at 127.0.0.1:5432/test), the fake Slack on
127.0.0.1; nothing is mocked and no test waits for a timer it could step.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import alerts as wandb
from alerts.delivery import outbox
from alerts.settings import load_settings
from alerts.store.db import open_store
from fakes.slack import FakeSlack

pytestmark = pytest.mark.timeout(240)


def channel_file(folder, user, webhook_url):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{user}.yaml").write_text(
        f"user: {user}\nchannels:\n  - type: slack\n    webhook_url: {webhook_url}\n", encoding="utf-8")


# A training script that raises one alert and goes on training in pure Python (the GIL busy, as a
# real loop keeps it), until it is killed.
ALERT_THEN_TRAIN = """
    import alerts
    alerts.init(project="durable", name="victim")
    alerts.alert(title="Loss exploded", text="must survive kill -9", level="ERROR")
    print("ALERTED", flush=True)
    x = 0
    while True:
        x += 1
"""


def test_an_alert_that_returned_survives_kill_9_and_the_next_relay_delivers_it(tmp_path, spawn, backend_url):
    with FakeSlack() as slack:
        folder = tmp_path / "channels"
        channel_file(folder, "alice", slack.webhook_url("alice-hook"))
        # The child does not relay: the row must be in the store for the next relay, not in flight.
        env = {"ALERTS_CHANNELS": str(folder), "ALERTS_SLACK_WEBHOOK_HOSTS": "127.0.0.1", "ALERTS_RELAY": "0"}
        child = spawn(textwrap.dedent(ALERT_THEN_TRAIN), env=env)
        child.expect("ALERTED")
        child.proc.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL

        (run,) = wandb.Api().runs("durable")
        assert [a["title"] for a in run.alerts()] == ["Loss exploded"]  # the record was committed
        store = open_store(load_settings().resolved_database_url())
        (row,) = outbox.listing(store)
        assert row.state == "pending" and row.alert_uid == run.alerts()[0]["uid"]

        result = subprocess.run([sys.executable, "-m", "alerts.cli", "relay", "--timeout", "30"],
                                env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        (message,) = slack.messages("alice-hook")
        assert message["text"].startswith("[ERROR] Loss exploded")
        assert [r.state for r in outbox.listing(store)] == ["sent"]


def test_alerts_raised_while_another_process_holds_the_write_lock_return_and_are_kept(store_dir):
    """The wait for the commit is bounded and raises nothing: a locked database (another process
    writing for minutes) costs alert() its bounded wait once, not a hang; the records are written
    once the lock is gone."""
    import sqlite3

    run = wandb.init(project="locked")
    assert run._writer.flush()  # the run's row is in before the lock
    lock = sqlite3.connect(store_dir / "alerts.db", isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN IMMEDIATE")
    alerted = threading.Event()
    released_by = []

    def hold() -> None:
        # Released when the alerts have returned; the 120 s bound only ends a hang (and fails the test).
        released_by.append("alerts returned" if alerted.wait(120) else "bound")
        lock.execute("COMMIT")
        lock.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        for i in range(20):
            wandb.alert(title=f"raised while locked {i}", text="kept")
    finally:
        alerted.set()
        holder.join()
    run.finish(timeout=120)
    assert released_by == ["alerts returned"]
    assert sorted(a["title"] for a in wandb.Api().run(run.id).alerts()) == sorted(
        f"raised while locked {i}" for i in range(20))


def wait_until(predicate, bound: float = 60.0) -> bool:
    """Poll ``predicate`` until it holds; the bound only ends a hang on a loaded machine."""
    import time

    deadline = time.monotonic() + bound
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_switch_interval_is_lowered_only_while_an_alert_is_on_its_way(tmp_path, monkeypatch):
    """Delivery gets the GIL quickly while an alert goes out; afterwards the program has the
    interval it had, and one it sets itself meanwhile is kept."""
    from alerts.delivery import boost

    with FakeSlack() as slack:
        channel_file(tmp_path / "channels", "alice", slack.webhook_url("alice-hook"))
        monkeypatch.setenv("ALERTS_CHANNELS", str(tmp_path / "channels"))
        monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
        before = sys.getswitchinterval()
        try:
            sys.setswitchinterval(0.004)  # the program's own choice
            wandb.init(project="boost")
            lowered = []
            real_start = boost.start

            def start() -> None:  # records what the relay ran with, without changing it
                real_start()
                lowered.append(sys.getswitchinterval())

            monkeypatch.setattr(boost, "start", start)
            wandb.alert(title="first", text="x")
            assert wait_until(lambda: len(slack.messages("alice-hook")) == 1)
            assert lowered == [pytest.approx(boost.URGENT_SWITCH_INTERVAL)]
            assert wait_until(lambda: not boost.lowered())
            assert sys.getswitchinterval() == pytest.approx(0.004)

            # The program changes the interval while an alert is on its way: its value is kept.
            monkeypatch.setattr(boost, "start", lambda: (real_start(), sys.setswitchinterval(0.003)))
            wandb.alert(title="second", text="x")
            assert wait_until(lambda: not boost.lowered())
            assert sys.getswitchinterval() == pytest.approx(0.003)
        finally:
            wandb.finish()
            sys.setswitchinterval(before)
