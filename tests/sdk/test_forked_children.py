"""Runs started in forked children (multiprocessing's default start method on Linux) are stored like
any other, however the child ends, on SQLite and PostgreSQL; the parent's run is left alone.

A child that ends in ``os._exit(0)`` runs no exit hook at all (not atexit, not multiprocessing's):
its run stays ``running`` until the crash check finds its heartbeat two minutes old and its process
gone, and marks it ``crashed``. The test steps the check's clock instead of waiting.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import time

import pytest

import alerts as wandb
from alerts.sdk import crashes
from alerts.store.db import open_store

pytestmark = pytest.mark.timeout(180)


def child(ending: str) -> None:
    wandb.log({"from_child": 1})  # the parent's run, inherited: not stored (warned once)
    run = wandb.init(project="forked", name=ending)
    assert run is wandb.run and run.name == ending
    for step in range(3):
        wandb.log({"loss": 1.0 / (step + 1)})
    if ending == "finish":
        wandb.finish()
    elif ending == "raise":
        raise ValueError("the child failed")
    elif ending == "sys-exit":
        sys.exit(3)
    elif ending == "os-exit":
        os._exit(0)
    # "return": the child returns without finish()


ENDINGS = ("finish", "raise", "return", "sys-exit", "os-exit")


def test_each_ending_of_a_forked_child_is_stored_with_its_state(backend_url):
    parent = wandb.init(project="forked", name="parent")
    wandb.log({"loss": 9.0})
    context = multiprocessing.get_context("fork")
    processes = {ending: context.Process(target=child, args=(ending,)) for ending in ENDINGS}
    for process in processes.values():
        process.start()
    for process in processes.values():
        process.join(90)
    assert {e: p.exitcode for e, p in processes.items()} == {
        "finish": 0, "raise": 1, "return": 0, "sys-exit": 3, "os-exit": 0}
    wandb.log({"loss": 8.0})  # the parent goes on logging to its own run
    wandb.finish()

    runs = {r.name: r for r in wandb.Api().runs("forked")}
    assert set(runs) == {"parent", *ENDINGS}
    assert runs["parent"].state == "finished"
    assert [row["loss"] for row in runs["parent"].history(pandas=False)] == [9.0, 8.0]
    assert all("from_child" not in row for row in runs["parent"].history(pandas=False))
    for ending in ("finish", "raise", "return", "sys-exit"):
        assert [row["loss"] for row in runs[ending].history(pandas=False)] == [1.0, 0.5, 1 / 3], ending
        assert runs[ending].id != parent.id
    assert (runs["finish"].state, runs["return"].state) == ("finished", "finished")
    assert (runs["raise"].state, runs["raise"].error_type) == ("failed", "ValueError")
    assert "the child failed" in runs["raise"].error_text
    assert (runs["sys-exit"].state, runs["sys-exit"].exit_code) == ("failed", 3)

    # os._exit(0): no hook ran. The run is stored (a forked child writes its run at init()) and
    # still running; once its heartbeat is older than CRASH_AFTER, the crash check marks it.
    assert runs["os-exit"].state == "running"
    store = open_store(wandb.Api().settings.resolved_database_url())
    later = time.time() + crashes.CRASH_AFTER + 1
    marked = crashes.find_crashed(store, later, socket.gethostname())
    assert [r.name for r in marked] == ["os-exit"]
    assert wandb.Api().run(runs["os-exit"].id).state == "crashed"
