"""One writer per run: which process may resume a run, decided in the store.

A run is *held* while its row says ``running``, its heartbeat (written every 10 s by its process's
writer) is younger than ``CRASH_AFTER`` (two minutes), and its process is alive: by pid when it ran
on this host, by the fresh heartbeat alone when it ran on another. ``init(id=X, resume=...)`` of a
held run raises :class:`~alerts.errors.RunInUseError` naming the holder; a run whose holder ended,
was killed (its pid is gone on this host) or went silent for two minutes may be resumed.

The claim is a compare-and-set of the run row (:meth:`Store.claim_run`): it succeeds only if the row
is still as it was read, so of two processes resuming one run at once, on SQLite or PostgreSQL,
exactly one gets it and the other then finds it held.
"""

from __future__ import annotations

import os
from typing import Callable, Collection, Optional

from alerts.errors import RunInUseError, UsageError
from alerts.processes import pid_alive
from alerts.sdk.crashes import CRASH_AFTER
from alerts.store.db import Store
from alerts.store.models import RunRecord

# Each lost compare-and-set means the row changed (a heartbeat, another claim); look again this often.
CLAIM_ATTEMPTS = 5


def holder(record: RunRecord, now: float, host: str, live_here: Collection[str] = (),
           is_alive: Callable[[int], bool] = pid_alive) -> Optional[str]:
    """Who is writing ``record``'s run (``"process 123 on host-a"``), or None if no live process is.

    ``live_here`` holds the ids of the runs this process is logging: a row naming this very process
    is held only if the run is one of them (otherwise it is an earlier run of ours that has ended).
    """
    if record.state != "running" or now - record.heartbeat_at >= CRASH_AFTER:
        return None
    if record.host == host and record.pid is not None:
        if record.pid == os.getpid():
            if record.id not in live_here:
                return None
            return f"this process ({record.pid} on {host})"
        if not is_alive(record.pid):
            return None  # killed: its pid is gone
    return f"process {record.pid} on {record.host}"


def in_use_error(record: RunRecord, who: str, now: float) -> RunInUseError:
    """The error for a resume of a held run: who holds it, and when it may be resumed."""
    return RunInUseError(
        f"run {record.id!r} is being written by {who} (last heartbeat {max(0.0, now - record.heartbeat_at):.0f} s "
        f"ago), and one process writes a run at a time. Resume it (init(id={record.id!r}, resume='allow')) "
        f"once that process has ended; if it was killed, at once on the same host, or from another host "
        f"{CRASH_AFTER:.0f} s after its last heartbeat.")


def claim(store: Store, run_id: str, fields_for: Callable[[RunRecord], dict], now: float, host: str, *,
          live_here: Collection[str] = (), flush: Callable[[], object] = lambda: None,
          is_alive: Callable[[int], bool] = pid_alive) -> RunRecord:
    """Make this process the writer of run ``run_id``: write ``fields_for(row)`` on its row if no live
    process holds it. Returns the row as it was before; raises :class:`RunInUseError` if it is held.

    ``flush`` commits this process's queued writes: called when the row names this process for a run
    it no longer logs, so that the end of that earlier run is stored before the claim, not over it.
    """
    for _ in range(CLAIM_ATTEMPTS):
        record = _read(store, run_id)
        if record.state == "running" and record.host == host and record.pid == os.getpid() \
                and run_id not in live_here:
            flush()
            record = _read(store, run_id)
        who = holder(record, now, host, live_here, is_alive)
        if who is not None:
            raise in_use_error(record, who, now)
        if store.claim_run(record, fields_for(record)):
            return record
    raise RunInUseError(f"run {run_id!r} changed {CLAIM_ATTEMPTS} times while this process tried to resume it: "
                        "another process is resuming it; one process writes a run at a time")


def _read(store: Store, run_id: str) -> RunRecord:
    record = store.get_run(run_id)
    if record is None:
        raise UsageError(f"run {run_id!r} disappeared from the store while this process resumed it")
    return record
