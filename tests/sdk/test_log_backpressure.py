"""What ``log()`` costs the training thread when the background writer is behind (issue 8, log()'s
amortised cost).

* ``log()`` yields the GIL to a writer far behind on one call in 32, not on every call: it used to
  ``time.sleep(0)`` on every call past 20,000 queued rows (a syscall each, and a chance each to hand
  the GIL to the writer; a tight loop spent 42% of its time in calls over 100 µs). Nothing is lost
  for it: every row is stored once the writer catches up.
* The writer packs history at most 1,000 rows per C call (MessagePack holds the GIL throughout), so
  the training thread never waits for a 10,000-row one (8-16 ms); chunks are still stored whole.

Real SQLite, a real lock taken by another connection to hold the writer back; no timing asserted.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time

import msgpack
import pytest

import alerts as wandb
from alerts.sdk import worker
from alerts.store import jsoncodec

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


def test_log_yields_on_one_call_in_32_while_the_writer_is_far_behind_and_every_row_is_stored(store_dir):
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
    assert 0 < sleeps <= (total - 20_000) // 32 + 1
    stored = [r["i"] for r in wandb.Api().run(run.id).scan_history()]
    assert stored == list(range(total)) and writer.dropped_rows == 0


def test_the_writer_packs_at_most_a_thousand_rows_in_one_call_and_stores_whole_chunks(store_dir, monkeypatch):
    monkeypatch.setenv("ALERTS_FLUSH_INTERVAL", "5")  # the whole burst reaches the writer in a few cycles
    # Rows handed to msgpack in one C call (which holds the GIL throughout), seen as the list argument
    # of the writer thread's calls of the functions that call it: msgpack.packb, and the writer's
    # own _pack (a kept Packer).
    packers = {msgpack.packb.__code__, worker._pack.__code__}
    packed: list = []

    def profile(frame, event, _arg):
        if event == "call" and frame.f_code in packers:
            lists = [len(v) for v in frame.f_locals.values() if type(v) is list]
            if lists:
                packed.append(max(lists))

    threading.setprofile(profile)  # for the threads started from now on: the run's writer
    try:
        run = wandb.init(project="p")
    finally:
        threading.setprofile(None)
    for i in range(25_000):
        wandb.log({"loss": 1.0 / (i + 1), "i": i})
    run.finish()

    assert sum(packed) >= 25_000 and max(packed) <= 1_000
    db = sqlite3.connect(store_dir / "alerts.db")
    sizes = [n for (n,) in db.execute("SELECT n_rows FROM history_chunks WHERE run_id = ?", (run.id,))]
    db.close()
    assert sum(sizes) == 25_000 and max(sizes) > 1_000  # still stored as large chunks: one insert each
    assert [r["i"] for r in wandb.Api().run(run.id).scan_history()] == list(range(25_000))


@pytest.mark.parametrize("count", [1, 15, 16, 1_000, 1_001, 2_500, 10_000])
def test_packing_in_pieces_gives_the_bytes_of_one_pack(count):
    rows = [{"loss": 1.0 / (i + 2), "_step": i, ("k\ud800" if i == count // 2 else "x"): i} for i in range(count)]
    in_pieces, whole = [], []
    assert worker.pack_in_pieces(rows, in_pieces) == jsoncodec.pack_rows(rows, whole)
    assert in_pieces == whole == [("k\ud800", "key")]  # the repair is noted the same way
