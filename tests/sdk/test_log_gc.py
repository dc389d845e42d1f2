"""Rows queued by ``log()`` are invisible to Python's cyclic garbage collector (issue 8, the tail of
``log()``): each used to be a tuple, which the collector tracks, and the 20,000-30,000 of them alive
in a tight loop's queue made it run about 20 full collections per million calls, each a stall of the
training thread of up to 60 ms.

Real SQLite, a real lock taken by another connection to hold the writer back (the queue grows as it
does when a tight loop runs ahead of the writer); collections counted with ``gc.callbacks``.
"""

from __future__ import annotations

import gc
import sqlite3

import pytest

import alerts as wandb

pytestmark = pytest.mark.timeout(240)


def test_rows_waiting_for_the_writer_cause_no_full_garbage_collection(store_dir):
    run = wandb.init(project="p")
    writer = run._writer
    assert writer.flush()  # the run's row is in before the lock
    full = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    total = 150_000  # queued at once: far more than the objects a fresh interpreter keeps
    lock = sqlite3.connect(store_dir / "alerts.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    gc.collect()
    gc.callbacks.append(count)
    try:
        for i in range(total):
            wandb.log({"loss": 1.0 / (i + 1), "acc": 0.5, "note": "x"})
        held = writer.held_rows
    finally:
        gc.callbacks.remove(count)
        lock.execute("COMMIT")
        lock.close()
    run.finish(timeout=120)

    assert held > 100_000, "the writer was not held back: the test proves nothing"
    assert full == []
    assert [r["_step"] for r in wandb.Api().run(run.id).scan_history()] == list(range(total))
