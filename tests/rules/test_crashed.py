"""A run whose process died without a word (kill -9, OOM killer, a node lost) becomes ``crashed``,
found by the watchdog of any process logging to the same store, and ``run_state`` rules fire."""

from __future__ import annotations

import signal

import alerts as wandb
from alerts import clock
from alerts.sdk import crashes

VICTIM = """
    import alerts
    alerts.init(project="p", name="victim")
    alerts.log({"loss": 1.0})
    alerts.run._writer.flush(10)
    print("logged", flush=True)
    import time
    time.sleep(600)
"""


def test_a_killed_run_is_marked_crashed_and_its_rule_fires_once(tmp_path, spawn, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("rules:\n  - {name: crashed, kind: run_state, states: [crashed], level: ERROR,"
                                  " title: '{run.name} {run.state}'}\n")
    monkeypatch.setenv("ALERTS_RULES", str(rules))
    child = spawn(VICTIM)
    child.expect("logged")
    child.proc.send_signal(signal.SIGKILL)
    child.wait()
    (victim,) = wandb.Api().runs("p")
    assert victim.state == "running"  # nobody could finish it

    fake = clock.FakeClock(start=victim.heartbeat_at + crashes.CRASH_AFTER + 1)
    monkeypatch.setattr(clock, "now", fake)
    watcher = wandb.init(project="q", name="watcher")  # any process logging to the store watches
    assert watcher._writer.flush(10)
    assert wandb.Api().run(victim.id).state == "running"  # the first check waits a full interval
    fake.advance(crashes.CHECK_EVERY)
    assert watcher._writer.flush(10) and watcher._writer.flush(10)  # the tick marks; the next cycle commits
    wandb.finish()
    victim = wandb.Api().run(victim.id)
    assert victim.state == "crashed" and victim.error_type == "crashed"
    (alert,) = victim.alerts()
    assert (alert["rule"], alert["title"], alert["level"], alert["status"]) == ("crashed", "victim crashed", "ERROR", "firing")
    assert wandb.Api().run(watcher.id).state == "finished" and wandb.Api().run(watcher.id).alerts() == []


def test_a_run_whose_process_lives_is_not_crashed(tmp_path):
    from alerts.settings import load_settings
    from alerts.store.db import open_store

    run = wandb.init(project="p")
    run._writer.flush(10)
    store = open_store(load_settings().resolved_database_url())
    import socket

    later = wandb.Api().run(run.id).heartbeat_at + crashes.CRASH_AFTER + 1
    assert crashes.find_crashed(store, later, socket.gethostname(), is_alive=lambda pid: True) == []
    wandb.finish()
