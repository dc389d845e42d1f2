"""The server's scheduled jobs, driven one run at a time on the app's stepped clock: the relay sends
the outbox to the fake Slack, crashed runs are marked and their owners notified once, tick hooks get
``now``, old silences and history points go, and with two replicas on one store (SQLite and
PostgreSQL) each job runs on one of them, the other taking over when the first stops."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import types

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from alerts.clock import FakeClock
from alerts.delivery import detached, outbox
from alerts.pipeline import silence
from alerts.sdk.crashes import CRASH_AFTER
from alerts.server.app import create_app
from alerts.server.jobs import Jobs, replica_holder
from alerts.settings import load_settings
from alerts.store import jsoncodec, leases
from alerts.store.db import Batch
from alerts.store.models import HistoryChunk, LeaseRecord
from conftest import relays_running_for
from fakes.slack import FakeSlack
from server.jobkit import WAIT, add_alert, add_run, crashed_rule, slack_channels, wait_until

DAY = 86400.0


@pytest.fixture
def slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def env(tmp_path, slack, monkeypatch):
    """Alice's and bob's channels (a webhook each on the fake Slack) and a rule for crashed runs."""
    monkeypatch.setenv("ALERTS_CHANNELS", str(slack_channels(tmp_path / "channels", slack, ("alice", "bob"))))
    monkeypatch.setenv("ALERTS_SLACK_WEBHOOK_HOSTS", "127.0.0.1")
    monkeypatch.setenv("ALERTS_RULES", str(crashed_rule(tmp_path / "rules")))


@pytest.fixture
def served(env, server_store, server_clock):
    """The app in-process, its scheduler off: the test runs each job with ``jobs.run(name, now)``."""
    app = create_app(load_settings(), store=server_store, clock=server_clock, jobs=False)
    with TestClient(app) as client:
        yield app, client


def test_the_relay_job_sends_what_was_committed_to_the_owners_channel(served, server_store, server_clock, slack):
    app, _ = served
    now = server_clock()
    run_id = add_run(server_store, now)
    add_alert(server_store, app.state.channels, run_id, "disk full on node 7", now)
    assert app.state.jobs.run("relay", now) == "ran"
    (message,) = slack.messages("alice-hook")
    assert "disk full on node 7" in message["text"]
    assert slack.messages("bob-hook") == []
    assert [r.state for r in outbox.listing(server_store)] == ["sent"]


def test_a_crashed_run_becomes_crashed_and_its_owner_is_notified_once(served, server_store, server_clock, slack):
    app, _ = served
    now = server_clock()
    stale = now - CRASH_AFTER - 1
    lost = add_run(server_store, stale, owner="bob", name="lost-on-node-7")  # another host: its age says enough
    fresh = add_run(server_store, now, owner="bob")
    # On this host, with its process still there (stopped, or its writer stuck): not a crash.
    stuck = add_run(server_store, stale, owner="bob", host=socket.gethostname(), pid=os.getpid())
    assert app.state.jobs.run("crashed", now) == "ran"
    assert server_store.get_run(lost).state == "crashed"
    assert server_store.get_run(fresh).state == server_store.get_run(stuck).state == "running"
    (alert,) = server_store.alerts_of(lost)
    assert (alert.rule, alert.title, alert.level, alert.status) == ("crashed", "lost-on-node-7 crashed", "ERROR", "firing")
    app.state.jobs.run("relay", now)
    (message,) = slack.messages("bob-hook")
    assert "lost-on-node-7 crashed" in message["text"]
    server_clock.advance(60)
    assert app.state.jobs.run("crashed", server_clock()) == "ran"  # again: nothing new
    app.state.jobs.run("relay", server_clock())
    assert len(server_store.alerts_of(lost)) == 1 and len(slack.messages("bob-hook")) == 1


def test_a_run_marked_crashed_by_another_process_first_is_not_alerted_twice(served, server_store, server_clock):
    from alerts.sdk import crashes

    app, _ = served
    now = server_clock()
    lost = add_run(server_store, now - CRASH_AFTER - 1)
    assert [r.id for r in crashes.find_crashed(server_store, now, socket.gethostname())] == [lost]  # a script's watchdog
    app.state.jobs.run("crashed", now)
    assert server_store.alerts_of(lost) == []  # that process raises its alert; the server does not


def test_tick_hooks_get_now_and_a_failing_hook_does_not_stop_the_others(served, server_clock, caplog):
    app, _ = served
    seen = []

    def broken(now):
        raise RuntimeError("a bug in a hook")

    app.state.tick_hooks.extend([broken, seen.append])
    server_clock.advance(300)
    assert app.state.jobs.run("ticks", server_clock()) == "ran"
    assert seen == [server_clock()]
    assert "tick hook" in caplog.text and "a bug in a hook" in caplog.text


def test_silences_that_ended_longer_than_the_retention_ago_are_deleted(served, server_store, server_clock):
    app, _ = served
    now = server_clock()
    matchers = [silence.parse_matcher("project=vision")]
    old = silence.add(server_store, matchers, now - 10 * DAY, now - 8 * DAY, "alice", "", now - 10 * DAY)
    recent = silence.add(server_store, matchers, now - 2 * DAY, now - 1 * DAY, "alice", "", now - 2 * DAY)
    active = silence.add(server_store, matchers, now, now + DAY, "alice", "", now)
    assert app.state.jobs.run("silences", now) == "ran"  # ALERTS_RETENTION: 7 days by default
    left = [s.id for s in silence.listing(server_store, now, include_expired=True)]
    assert left == [recent, active] and old not in left


def _chunks(store) -> list[float]:
    with store.engine.connect() as conn:
        return sorted(conn.execute(select(HistoryChunk.last_time)).scalars())


def _add_history(store, run_id: str, at: float, first_step: int) -> None:
    rows = [{"_step": first_step + i, "_timestamp": at, "loss": 1.0} for i in range(3)]
    store.write_batch(Batch(history=[{"run_id": run_id, "first_step": first_step, "last_step": first_step + 2,
                                      "n_rows": 3, "last_time": at, "data": jsoncodec.pack_rows(rows)}]))


def test_history_points_older_than_the_history_retention_are_deleted(env, server_store, server_clock, monkeypatch):
    now = server_clock()
    run_id = add_run(server_store, now - 100 * DAY)
    _add_history(server_store, run_id, now - 95 * DAY, 0)
    _add_history(server_store, run_id, now - 1 * DAY, 3)
    kept = create_app(load_settings(), store=server_store, clock=server_clock, jobs=False)
    with TestClient(kept):
        kept.state.jobs.run("retention", now)  # no ALERTS_HISTORY_RETENTION: every point stays
    assert _chunks(server_store) == [now - 95 * DAY, now - DAY]
    monkeypatch.setenv("ALERTS_HISTORY_RETENTION", "30d")
    pruned = create_app(load_settings(), store=server_store, clock=server_clock, jobs=False)
    with TestClient(pruned):
        assert pruned.state.jobs.run("retention", now) == "ran"
    assert _chunks(server_store) == [now - DAY]
    assert [row["_step"] for row in server_store.iter_history(run_id)] == [3, 4, 5]


# -- replicas: one runs each job ----------------------------------------------------------------------


def _replica(store, clock, host: str, pid: int) -> Jobs:
    """A replica's jobs over a shared store, as ``alerts serve`` on ``host`` would hold them."""
    rules = types.SimpleNamespace(ruleset=_empty_rules(), reload_if_asked=lambda: False)
    state = types.SimpleNamespace(store=store, settings=load_settings(), clock=clock, rules=rules, channels=None,
                                  tick_hooks=[], metrics=None)
    return Jobs(state, holder=replica_holder(host, pid))


def _empty_rules():
    from alerts.rules.loader import RuleSet

    return RuleSet()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_each_job_runs_on_one_replica_and_another_takes_over_when_its_lease_runs_out(env, store_backend):
    clock = FakeClock()
    a = _replica(store_backend, clock, "host-a", 1001)
    b = _replica(store_backend, clock, "host-b", 1002)
    for job in ("crashed", "silences", "retention", "relay"):
        assert a.run(job) == "ran"
        assert b.run(job) == "skipped"
    clock.advance(25)  # a keeps running (and renewing) its jobs
    assert (a.run("crashed"), b.run("crashed")) == ("ran", "skipped")
    clock.advance(25)
    assert b.run("crashed") == "skipped"  # a renewed at the last run: still a's
    clock.advance(31)  # a stopped (a host lost): its lease runs out
    assert b.run("crashed") == "ran"
    assert a.run("crashed") == "skipped"  # a is back: b holds the job now
    # Every replica watches its own rules and runs its own tick hooks (what it holds in memory).
    assert a.run("rules") == b.run("rules") == a.run("ticks") == b.run("ticks") == "ran"


def test_a_replica_killed_on_the_same_host_hands_its_jobs_over_at_once(env, store_backend):
    clock = FakeClock()
    dead = _replica(store_backend, clock, socket.gethostname(), _dead_pid())
    survivor = _replica(store_backend, clock, socket.gethostname(), os.getpid())
    assert dead.run("crashed") == "ran"
    assert survivor.run("crashed") == "ran"  # its pid is gone: no need to wait the lease out


def test_a_replica_that_stops_gives_its_jobs_up(env, store_backend):
    clock = FakeClock()
    a = _replica(store_backend, clock, "host-a", 1001)
    b = _replica(store_backend, clock, "host-b", 1002)
    assert (a.run("crashed"), b.run("crashed")) == ("ran", "skipped")
    a.stop()
    assert b.run("crashed") == "ran"


def test_a_job_woken_while_it_runs_runs_once_more(env, store_backend):
    clock = FakeClock()
    replica = _replica(store_backend, clock, "host-a", 1001)
    started, go, calls = threading.Event(), threading.Event(), []

    def slow(now):
        calls.append(now)
        if len(calls) == 1:
            started.set()
            go.wait(WAIT)

    replica.jobs["ticks"].body = slow
    runner = threading.Thread(target=replica.run, args=("ticks",))
    runner.start()
    started.wait(WAIT)
    assert replica.run("ticks") == "busy"  # the scheduler's next tick while it runs: no second run at once
    go.set()
    runner.join(WAIT)
    assert len(calls) == 2  # ... but once more when done


# -- the embedded mode sees the server ------------------------------------------------------------------


def test_a_script_exiting_while_the_server_relays_its_store_starts_no_detached_relay(served, server_store,
                                                                                      server_clock, store_dir):
    app, _ = served
    now = server_clock()
    assert app.state.jobs.run("relay", now) == "ran"  # the server holds the store's relay lease
    handed = detached.hand_over(server_store, load_settings(), now=now)  # what a script's exit calls
    assert handed.server and not handed.started and handed.pid == os.getpid()
    assert "the alert server (pid" in handed.describe()
    assert relays_running_for(store_dir) == []
    held = leases.read(server_store, detached.lease_name(load_settings()))
    assert detached.held_by_server(detached.running(server_store, now, load_settings()))
    assert held.holder.startswith(f"{socket.gethostname()}:{os.getpid()}:serve-")


def test_the_server_gives_the_relay_lease_up_at_shutdown(env, server_store, server_clock):
    app = create_app(load_settings(), store=server_store, clock=server_clock, jobs=False)
    with TestClient(app):
        app.state.jobs.run("relay", server_clock())
        assert leases.read(server_store, detached.lease_name(load_settings())) is not None
    assert leases.read(server_store, detached.lease_name(load_settings())) is None  # scripts hand over again


# -- the scheduler ----------------------------------------------------------------------------------------


def test_with_the_scheduler_running_a_committed_alert_is_sent_when_the_relay_is_woken(env, server_store, slack):
    app = create_app(load_settings(), store=server_store, jobs=True)  # the wall clock, the real scheduler
    with TestClient(app):
        now = app.state.clock()
        add_alert(server_store, app.state.channels, add_run(server_store, now), "woken", now)
        app.state.wake_relay()
        slack.wait_for_messages(1, "alice-hook", timeout=WAIT)
        wait_until(lambda: [r.state for r in outbox.listing(server_store)] == ["sent"], "the row marked sent")
    assert app.state.wake_relay() is None  # after shutdown: a no-op, not an error
    with server_store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(LeaseRecord)).scalar_one() == 0


LEFT_RUNNING = """
    import atexit, logging, threading, time
    from apscheduler.schedulers.base import STATE_STOPPED
    from fastapi.testclient import TestClient
    from alerts.server import jobs
    from alerts.server.app import create_app
    from alerts.settings import load_settings

    jobs.RELAY_EVERY = 0.05  # the relay comes due many times while the exit takes its time
    app = create_app(load_settings(), jobs=True)
    TestClient(app).__enter__()  # the lifespan starts and is never ended
    scheduler = app.state.jobs._scheduler
    late = threading.Event()

    class Late(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.ERROR:
                late.set()

    logging.basicConfig()  # what goes wrong shows on stderr, as under pytest or uvicorn
    logging.getLogger("apscheduler").addHandler(Late())

    @atexit.register
    def slow_exit():
        # An exit handler that takes its time (schemathesis ends its event loop here): the thread
        # pools are ended by now, and the scheduler's thread has the time to submit the relay.
        give_up = time.monotonic() + 60
        while scheduler.state != STATE_STOPPED and not late.wait(0.01) and time.monotonic() < give_up:
            pass
        print("stopped" if scheduler.state == STATE_STOPPED else "running", flush=True)
"""


def test_a_scheduler_still_running_when_the_interpreter_exits_prints_no_submission_error(env, run_script):
    """A process whose app's scheduler was never stopped (CI: the schema test's, see the test below)
    exits without APScheduler's "Error submitting job "relay ..." ... cannot schedule new futures after
    shutdown" (it followed pytest's summary in CI): the scheduler is shut down before the thread pools."""
    result = run_script(LEFT_RUNNING, timeout=WAIT)
    assert result.returncode == 0, result.stderr
    assert "Error submitting job" not in result.stderr and "cannot schedule new futures" not in result.stderr, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "stopped"


def test_two_lifespans_of_one_app_each_stop_their_own_scheduler(env, server_store):
    """schemathesis' in-process client runs the app's lifespan beside the test's own: each lifespan
    makes its Jobs, and the first one's scheduler went on relaying the test's store until the exit
    (the lifespan stopped whichever Jobs the app's state held last)."""
    from apscheduler.schedulers.base import STATE_STOPPED

    app = create_app(load_settings(), store=server_store, jobs=True)
    with TestClient(app):
        first = app.state.jobs._scheduler
        with TestClient(app):
            second = app.state.jobs._scheduler
            assert second is not first
        assert second.state == STATE_STOPPED
    assert first.state == STATE_STOPPED
