"""What ``log()`` costs the training thread when the background writer is behind (issue 8, log()'s
amortised cost).

* ``log()`` never sleeps or yields the GIL to wait for the writer, however far behind it is: it used
  to ``time.sleep(0)`` on every call past 20,000 queued rows, and each such call could hand the GIL
  to the writer for a switch interval or more (a tight loop spent 42% of its time in calls over
  100 µs, some 110 ms long). Nothing is lost for it: every row is stored once the writer catches up.
* The writer encodes history in pieces of at most 1,000 rows: each piece is one C call (MessagePack)
  that holds the GIL, so the training thread never waits for a 10,000-row one (8-16 ms).

Real SQLite, a real lock taken by another connection to hold the writer back; no timing asserted.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time

import pytest

import alerts as wandb

pytestmark = pytest.mark.timeout(240)


def sleeps_during(action) -> int:
    """How many times the calling thread called ``time.sleep`` while ``action()`` ran (a profile
    hook on this thread only: sees every C call, replaces nothing)."""
    calls = [0]
    this = threading.get_ident()

    def profile(_frame, event, arg):
        if event == "c_call" and arg is time.sleep and threading.get_ident() == this:
            calls[0] += 1

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return calls[0]


def test_log_never_sleeps_while_the_writer_is_far_behind_and_every_row_is_stored(store_dir):
    run = wandb.init(project="p")
    writer = run._writer
    assert writer.flush()  # the run's row is in before the lock
    total = 45_000  # past the 20,000 queued rows where log() used to start yielding
    lock = sqlite3.connect(store_dir / "alerts.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the writer's next commit waits: the queue grows behind it
    most = [0]

    def burst() -> None:
        for i in range(total):
            wandb.log({"i": i})
            if i % 1000 == 0:
                most[0] = max(most[0], len(writer.queue))

    try:
        sleeps = sleeps_during(burst)
    finally:
        lock.execute("COMMIT")
        lock.close()
    run.finish(timeout=120)

    assert most[0] > 20_000, "the writer was never far behind: the test proves nothing"
    assert sleeps == 0
    stored = [r["i"] for r in wandb.Api().run(run.id).scan_history()]
    assert stored == list(range(total)) and writer.dropped_rows == 0


def test_a_burst_is_encoded_in_pieces_of_at_most_a_thousand_rows(store_dir, monkeypatch):
    monkeypatch.setenv("ALERTS_FLUSH_INTERVAL", "5")  # the whole burst reaches the writer in one or two cycles
    run = wandb.init(project="p")
    for i in range(25_000):
        wandb.log({"loss": 1.0 / (i + 1), "i": i})
    run.finish()

    db = sqlite3.connect(store_dir / "alerts.db")
    sizes = [n for (n,) in db.execute("SELECT n_rows FROM history_chunks WHERE run_id = ? ORDER BY first_step",
                                      (run.id,))]
    db.close()
    assert sum(sizes) == 25_000 and max(sizes) <= 1_000
    assert [r["i"] for r in wandb.Api().run(run.id).scan_history()] == list(range(25_000))
