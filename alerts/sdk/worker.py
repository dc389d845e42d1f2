"""The background writer: the only thread that touches the database while a run logs.

``log()`` appends a tuple to a deque (an atomic, lock-free append under the GIL) and returns. This
thread wakes every ``interval`` seconds (or early, when the deque grows long, or on ``flush()``),
drains the deque and commits everything in one transaction. A kill -9 therefore loses at most what
was queued since the last commit: about ``interval`` seconds of points.

If a commit fails (disk full, database locked beyond the busy timeout) the batch is kept and retried
on the next wake; nothing is raised into the training loop.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional, Protocol

from sqlalchemy.exc import DataError, IntegrityError, InvalidRequestError, ProgrammingError

from alerts import clock as _clock
from alerts.sdk.media import media_path
from alerts.store import jsoncodec
from alerts.store.db import Batch, Store

logger = logging.getLogger("alerts")

# Wake the writer early once this many operations are queued: bounds memory when logging very fast.
WAKE_AT_QUEUE_LENGTH = 10_000
# Past this many, log() also yields the GIL (time.sleep(0)) on every call until the writer catches up.
# Why: the writer releases the GIL around every SQLite call, and a CPU-bound training loop takes it
# straight back; the writer then waits a whole switch interval (5 ms) per call and can fall seconds
# behind a loop that does nothing but log (the convoy effect), which would break the kill -9 bound.
# A loop that does real work between log() calls never gets here.
YIELD_AT_QUEUE_LENGTH = 20_000
# While the database refuses writes, keep at most this many history rows; older ones are dropped (counted).
MAX_PENDING_ROWS = 1_000_000
# Errors that retrying cannot cure: the row itself is wrong (a NOT NULL column empty, a bad value).
# Anything else (locked, disk full, connection lost, an OSError) is kept and retried.
PERMANENT_STORE_ERRORS = (IntegrityError, DataError, InvalidRequestError, ProgrammingError)
# After this many failed attempts at a batch, write it piece by piece (see Writer._salvage).
SALVAGE_AFTER_FAILURES = 3
# Rows per stored history chunk: bounds what one read decodes.
CHUNK_ROWS = 10_000
# A live run with nothing new still gets its heartbeat written this often (seconds).
HEARTBEAT_EVERY = 10.0

# Operation tags: the first element of each queued tuple.
HISTORY, MEDIA, ALERT, RUN_UPDATE, NEW_RUN, BARRIER = "h", "m", "a", "r", "n", "b"


class LiveRun(Protocol):
    id: str

    def _snapshot(self, now: float) -> Optional[dict]:
        """Columns to update for this run now (summary, last step, heartbeat), or None."""

    def _watch(self, now: float) -> None:
        """Evaluate what depends on time alone (stalled rules)."""


class Writer:
    """Drains queued operations into the store on a daemon thread."""

    def __init__(self, store: Store, media_root: Path, interval: float = 0.2,
                 clock: Optional[Callable[[], float]] = None) -> None:
        self.store = store
        self.media_root = media_root
        self.interval = interval
        self._clock = clock if clock is not None else _clock.now  # looked up now: tests swap it
        self.queue: deque = deque()
        self.append = self.queue.append  # what the hot path calls
        self._wake = threading.Event()
        self._live: dict[str, LiveRun] = {}
        # Re-entrant: the SIGTERM handler runs on the main thread and may interrupt it inside these.
        self._live_lock = threading.RLock()
        self._pending = Batch()
        self._barriers: list[threading.Event] = []
        self._stopping = False
        self._failures = 0
        self.dropped_rows = 0
        self.dropped_items = 0  # rows the store refused outright (see _salvage)
        self.pid = os.getpid()
        self.on_tick: Optional[Callable[[float, list], None]] = None  # called each cycle with the live runs
        self.on_deliveries: Optional[Callable[[], None]] = None  # called after a commit that queued deliveries
        self._thread = threading.Thread(target=self._run, name="alerts-writer", daemon=True)
        self._thread.start()

    # -- called from user threads -------------------------------------------------------------------

    def wake(self) -> None:
        """Commit what is queued now rather than at the next tick."""
        self._wake.set()

    def wake_if_long(self) -> None:
        """Wake the writer early when the queue is long, and give it the GIL when it is far behind
        (cheap enough for the hot path: one len() when the queue is short)."""
        length = len(self.queue)
        if length >= WAKE_AT_QUEUE_LENGTH:
            if not self._wake.is_set():
                self._wake.set()
            if length >= YIELD_AT_QUEUE_LENGTH:
                time.sleep(0)

    def attach(self, run: LiveRun) -> None:
        with self._live_lock:
            self._live[run.id] = run

    def detach(self, run_id: str) -> None:
        with self._live_lock:
            self._live.pop(run_id, None)

    def flush(self, timeout: Optional[float] = 30.0) -> bool:
        """Commit everything queued so far; ``False`` if that did not happen within ``timeout``."""
        if not self._thread.is_alive():
            return False
        done = threading.Event()
        self.queue.append((BARRIER, done))
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Flush, then stop the thread."""
        flushed = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        return flushed

    # -- the thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._cycle()
            except Exception:  # never let the writer die: log, keep the batch, try again
                logger.exception("alerts: background writer failed; will retry")
            if self._stopping and not self.queue:
                return

    def _cycle(self) -> None:
        batch = self._pending
        barriers = self._barriers
        queue = self.queue
        popleft = queue.popleft
        rows_by_run: dict[str, list] = {}
        # Only what is queued now: a producer faster than this loop must not keep it from committing.
        for _ in range(len(queue)):
            op = popleft()
            tag = op[0]
            if tag == HISTORY:
                rows = rows_by_run.get(op[1])
                if rows is None:
                    rows = rows_by_run[op[1]] = []
                rows.append(op[2])
            elif tag == BARRIER:
                barriers.append(op[1])
            else:
                try:
                    self._other(batch, op)
                except Exception:  # one bad operation is logged and skipped, never the whole cycle
                    logger.exception("alerts: skipped an operation the writer could not prepare (%s)", tag)
        for run_id, rows in rows_by_run.items():
            batch.history.extend(history_chunks(run_id, rows))  # encoding sanitizes what it must
        now = self._clock()
        with self._live_lock:
            live = list(self._live.values())
        for run in live:
            try:
                fields = run._snapshot(now)
            except Exception:
                logger.exception("alerts: could not snapshot run %s", run.id)
                continue
            if fields:
                batch.update_run(run.id, fields)
        if self.on_tick is not None:
            try:
                self.on_tick(now, live)  # the rules' watchdog: stalled runs, reloads
            except Exception:
                logger.exception("alerts: the rules watchdog failed")
        if batch:
            self._trim(batch)
            try:
                self.store.write_batch(batch)
            except Exception as exc:
                self._failures += 1
                if self._failures in (1, 10) or self._failures % 100 == 0:
                    logger.warning("alerts: could not write to %s (%s); keeping %d rows to retry",
                                   self.store.safe_url, exc, sum(c["n_rows"] for c in batch.history))
                if self._failures % SALVAGE_AFTER_FAILURES == 0:
                    # One bad row must not hold back everything else forever: write piece by piece,
                    # keep what fails for a passing reason (a lock), drop what can never be written.
                    self._pending = self._salvage(batch)
                    if not self._pending:
                        self._failures = 0
                else:
                    time.sleep(min(0.05 * self._failures, 2.0))
                    return
            else:
                if self._failures:
                    logger.warning("alerts: writing to the store again after %d failed attempts", self._failures)
                self._failures = 0
                self._pending = Batch()
                if batch.deliveries and self.on_deliveries is not None:
                    self.on_deliveries()  # wake the relay: the outbox rows are committed
            if self._pending:
                return
        for event in barriers:
            event.set()
        self._barriers = []

    def _other(self, batch: Batch, op: tuple) -> None:
        tag = op[0]
        if tag == RUN_UPDATE:
            fields = dict(op[2])
            for column in ("config", "summary", "tags"):
                if column in fields and not isinstance(fields[column], str):
                    fields[column] = jsoncodec.dumps(fields[column])
            batch.update_run(op[1], fields)
        elif tag == ALERT:
            batch.alerts.append(op[1])
            if len(op) > 2 and op[2]:
                batch.deliveries.extend(op[2])  # the alert's outbox rows: same transaction
        elif tag == MEDIA:
            _, run_id, step, key, media, relpath = op
            try:
                path = media_path(self.media_root, relpath)  # before mkdir: nothing outside the store
                path.parent.mkdir(parents=True, exist_ok=True)
                meta = media.write(path, self.media_root, run_id)
            except Exception as exc:
                logger.warning("alerts: could not write %s %r of run %s: %s", media.kind, key, run_id, exc)
                return
            batch.media.append({"run_id": run_id, "step": step, "key": key, "kind": media.kind,
                                "path": relpath, "meta": jsoncodec.dumps(meta)})
        elif tag == NEW_RUN:
            batch.runs.append(op[1])

    def _salvage(self, batch: Batch) -> Batch:
        """Write a failing batch one piece at a time; return what failed for a transient reason."""
        left = Batch()
        pieces = ([("runs", row) for row in batch.runs] + [("history", c) for c in batch.history]
                  + [("media", m) for m in batch.media] + [("alerts", a) for a in batch.alerts]
                  + [("deliveries", d) for d in batch.deliveries])
        for kind, item in pieces:
            if kind != "runs" and item.get("run_id") in {run["id"] for run in left.runs}:
                getattr(left, kind).append(item)  # its run is not written yet: wait with it
                continue
            try:
                self.store.write_batch(Batch(**{kind: [item]}))
            except PERMANENT_STORE_ERRORS as exc:
                if kind == "runs":  # never drop a run: every row of it would follow
                    left.runs.append(item)
                    continue
                self.dropped_items += 1
                logger.error("alerts: dropping one %s row that the store refuses (%s): %r", kind, exc,
                             {k: v for k, v in item.items() if k != "data"})
            except Exception:  # locked, disk full, connection lost: worth another try
                getattr(left, kind).append(item)
        for run_id, fields in batch.run_updates.items():
            try:
                self.store.write_batch(Batch(run_updates={run_id: fields}))
            except PERMANENT_STORE_ERRORS as exc:
                self.dropped_items += 1
                logger.error("alerts: dropping an update of run %s that the store refuses (%s)", run_id, exc)
            except Exception:
                left.update_run(run_id, fields)
        return left

    def _trim(self, batch: Batch) -> None:
        pending = sum(chunk["n_rows"] for chunk in batch.history)
        while pending > MAX_PENDING_ROWS and len(batch.history) > 1:
            dropped = batch.history.pop(0)
            pending -= dropped["n_rows"]
            self.dropped_rows += dropped["n_rows"]
            logger.error("alerts: the store has refused writes for a while; dropped %d rows of run %s "
                         "(%d so far)", dropped["n_rows"], dropped["run_id"], self.dropped_rows)


def history_chunks(run_id: str, rows: list[dict]) -> list[dict]:
    """Rows of one run as HistoryChunk columns, at most CHUNK_ROWS rows a chunk."""
    chunks = []
    for start in range(0, len(rows), CHUNK_ROWS):
        part = rows[start:start + CHUNK_ROWS]
        chunks.append({"run_id": run_id, "first_step": part[0]["_step"], "last_step": part[-1]["_step"],
                       "n_rows": len(part), "last_time": part[-1]["_timestamp"],
                       "data": jsoncodec.pack_rows(part)})
    return chunks


_writers: dict[tuple[str, str], Writer] = {}
_writers_lock = threading.RLock()  # re-entrant for the same reason as Writer._live_lock


def writer_for(store: Store, media_root: Path, interval: float) -> Writer:
    """The process's writer for a store (one thread per database, shared by every run)."""
    key = (store.url, str(media_root.resolve()))
    with _writers_lock:
        writer = _writers.get(key)
        if writer is None or writer.pid != os.getpid() or not writer._thread.is_alive():
            writer = _writers[key] = Writer(store, media_root, interval)
        return writer


def close_all(timeout: float = 30.0) -> None:
    """Flush and stop every writer (at interpreter exit, after the runs are finished)."""
    with _writers_lock:
        writers = list(_writers.values())
        _writers.clear()
    for writer in writers:
        if writer.pid == os.getpid():
            writer.close(timeout)


def _after_fork_in_child() -> None:
    # A forked child has the parent's writers but not their threads: start afresh.
    _writers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
