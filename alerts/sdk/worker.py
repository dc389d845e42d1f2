"""The background writer: the only thread that touches the database while a run logs.

``log()`` appends a tuple to a deque (an atomic, lock-free append under the GIL) and returns. This
thread wakes every ``interval`` seconds (or early, when the deque grows long, or on ``flush()``),
drains the deque and commits everything in one transaction. A kill -9 therefore loses at most what
was queued since the last commit: about ``interval`` seconds of points.

If a commit fails (disk full, database locked beyond the busy timeout) the batch is kept and retried
on the next wake; nothing is raised into the training loop. What is held meanwhile (queued plus
pending) is bounded by ``MAX_PENDING_ROWS`` at every moment: past it the oldest history rows are dropped
and counted, never a run, a run update, an alert or a delivery. ``log()`` enforces the bound itself on
the rare call that crosses it, because the writer may be stuck inside one database call for as long as
the busy timeout; it never waits for the database, only (briefly) for the writer to finish taking the
queue.

A value the store cannot encode (a lone surrogate, NUL in a text column) is repaired here, where it costs
the training loop nothing, and a warning names its key; a piece the store refuses for good is dropped on
its own, and a run's update (its state, summary, end) is written column by column rather than lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Optional, Protocol

import msgpack
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from alerts import clock as _clock
from alerts.sdk.media import media_path
from alerts.store import jsoncodec
from alerts.sdk.writers import WriterRegistry
from alerts.store.db import Batch, Store

logger = logging.getLogger("alerts")

# Wake the writer early once this many operations are queued: bounds memory when logging very fast.
WAKE_AT_QUEUE_LENGTH = 10_000
# Past this many, log() also yields the GIL (time.sleep(0)) on one call in YIELD_EVERY until the
# writer catches up. Why: the writer releases the GIL around every SQLite call, and a CPU-bound
# training loop takes it straight back; the writer then waits a whole switch interval (5 ms) per call
# and can fall seconds behind a loop that does nothing but log (the convoy effect), which would break
# the kill -9 bound. A yield lets a writer that waits for the GIL take it at once. Not on every call
# (as before): a syscall a call made such a loop's calls ~1 µs dearer, and a writer that is not
# waiting gains nothing from it. A loop that does real work between log() calls never gets here.
YIELD_AT_QUEUE_LENGTH = 20_000
YIELD_EVERY = 32
# While the database refuses writes, hold at most this many operations (queued history rows plus rows
# pending in the failed batch); past it the oldest history rows are dropped (counted, with a warning).
MAX_PENDING_ROWS = 1_000_000
# Errors worth another try when a batch is written piece by piece: locked, disk full, connection lost.
# Anything else a single piece raises (a NOT NULL column empty, a value out of range, a value the
# driver cannot convert) is the piece's own fault, which retrying cannot cure: the piece is dropped.
TRANSIENT_STORE_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError, OSError)
# At most one warning about dropped rows this often (seconds); the total is reported when writes resume.
DROP_WARNING_EVERY = 10.0
# How many (run, key) repairs are remembered so that each is warned about once.
MAX_WARNED_KEYS = 1000
# After this many failed attempts at a batch, write it piece by piece (see Writer._salvage).
SALVAGE_AFTER_FAILURES = 3
# Rows per stored history chunk: bounds what one read decodes.
CHUNK_ROWS = 10_000
# Rows packed in one C call (msgpack.packb holds the GIL throughout: ~0.5-1 us a row, so 10,000 rows
# held it 8-16 ms, a stall of the training thread). A chunk is packed in pieces this size and joined
# into the same bytes; its insert stays one statement (each statement gives the GIL up and then waits
# for it back, so smaller chunks would cost the writer more turns instead).
PACK_ROWS = 1_000
# A live run with nothing new still gets its heartbeat written this often (seconds).
HEARTBEAT_EVERY = 10.0

# Operation tags: the first element of each queued tuple.
HISTORY, MEDIA, ALERT, RUN_UPDATE, NEW_RUN, BARRIER = "h", "m", "a", "r", "n", "b"


# A history row is queued as the row dict itself, its run's id under this key (no user key can equal
# it: logged keys are strings), rather than as a ``(HISTORY, run_id, row)`` tuple. Why: a tuple is
# tracked by Python's cyclic garbage collector, and 20,000-30,000 of them alive in the queue made
# the collector run ~20 full collections per million log() calls (up to 60 ms each, stalls of the
# training thread); a dict of numbers and strings is not tracked, as long as its keys are not either:
# a bare object() is not (an instance of a class of our own would be). The writer takes the key out
# before the row is stored.
ROW_RUN = object()


class LiveRun(Protocol):
    id: str

    def _snapshot(self, now: float) -> Optional[dict]:
        """Columns to update for this run now (summary, last step, heartbeat), or None."""

    _unevaluated: list  # committed rows the rules have not seen yet

    def _evaluate_rules(self) -> None:
        """Evaluate the rules on those rows."""

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
        # Taken by the writer to empty the queue and by log() to shed rows from it; never held during
        # I/O. Re-entrant for the SIGTERM handler too (finish() may log while log() sheds).
        self._drain_lock = threading.RLock()
        self._pending = Batch()
        self._pending_rows = 0  # operations taken from the queue and not yet committed
        self._check_at = 0  # queue length at which log() takes its slow path (see _room_changed)
        self._behind_calls = 0  # log() calls far behind since the last yield (see YIELD_EVERY)
        self._room_changed()
        self._barriers: list[threading.Event] = []
        self._stopping = False
        self._failures = 0
        self._commit_late = False  # a commit_now() waited in vain and no cycle has completed since
        self.dropped_rows = 0  # history rows dropped to stay within MAX_PENDING_ROWS
        self._dropped_by_run: dict[str, int] = {}  # the same, per run (said at the run's finish())
        self._dropped_reported = 0
        self._drop_warned_at: Optional[float] = None
        self.dropped_items = 0  # rows the store refused outright (see _salvage)
        self._warned_keys: set = set()
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
        """Wake the writer early when the queue is long, give it the GIL on one call in YIELD_EVERY
        when it is far behind, and shed the oldest rows when more than MAX_PENDING_ROWS are held
        (cheap enough for the hot path: one len() and one compare while the queue is short)."""
        length = len(self.queue)
        if length >= self._check_at:
            if length >= WAKE_AT_QUEUE_LENGTH and not self._wake.is_set():
                self._wake.set()
            if length + self._pending_rows > MAX_PENDING_ROWS:
                self._shed()
            elif length >= YIELD_AT_QUEUE_LENGTH:
                self._behind_calls += 1
                if self._behind_calls >= YIELD_EVERY:
                    self._behind_calls = 0
                    time.sleep(0)

    @property
    def held_rows(self) -> int:
        """Operations held in memory: queued, plus taken by the writer and not yet committed."""
        return len(self.queue) + self._pending_rows

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

    def commit_now(self, timeout: float) -> bool:
        """Commit what is queued so far and wait for it, at most ``timeout`` seconds: what makes
        ``alert()`` durable when it returns. Never raises; False when the commit did not happen in
        time. Does not wait while the store is refusing writes (what is queued is then held and
        retried, as points are), nor on the writer's own thread (it would wait for itself)."""
        if self._failures or self._commit_late or threading.current_thread() is self._thread:
            self._wake.set()
            return False
        try:
            committed = self.flush(timeout)
        except Exception:  # never into the training loop
            logger.exception("alerts: could not wait for the writer")
            return False
        if not committed:
            # Stuck in one write (a lock held for minutes waits out the busy timeout): the next
            # alerts do not wait again until a cycle completes.
            self._commit_late = True
        return committed

    def unflushed_note(self, run_id: str, timeout: float) -> str:
        """What finish() says when its flush did not complete."""
        return f"not everything was written within {timeout:.0f}s"

    def close(self, timeout: float = 30.0) -> bool:
        """Flush, then stop the thread."""
        flushed = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        return flushed

    def _shed(self) -> None:
        """Drop the oldest queued history rows until what is held is a tenth under MAX_PENDING_ROWS
        (so this runs once per ~MAX_PENDING_ROWS/10 rows, not on every call), keeping every other
        operation in its order. Runs on the logging thread while the writer is stuck in the database;
        the rows the writer already holds are trimmed by the writer (_trim)."""
        with self._drain_lock:
            queue = self.queue
            room = MAX_PENDING_ROWS - MAX_PENDING_ROWS // 10 - self._pending_rows
            excess = len(queue) - max(room, 0)
            kept, dropped = [], 0
            while dropped < excess and queue:
                op = queue.popleft()
                if type(op) is dict:  # a history row
                    dropped += 1
                    self._dropped_of(op.get(ROW_RUN))
                else:
                    kept.append(op)  # runs, updates, alerts, barriers: never dropped
            queue.extendleft(reversed(kept))
        self._count_dropped(dropped)

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
        with self._live_lock:
            live = list(self._live.values())
        for run in live:
            # Rows a tight log() loop left waiting for the rules: their alerts join this commit.
            if run._unevaluated:
                try:
                    run._evaluate_rules()
                except Exception:
                    logger.exception("alerts: could not evaluate the rules of run %s", run.id)
        self._take(batch, self._drain(batch))
        now = self._clock()
        for run in live:
            try:
                fields = run._snapshot(now)
                if fields:
                    self._update_run(batch, run.id, fields)
            except Exception:
                logger.exception("alerts: could not snapshot run %s", run.id)
        if self.on_tick is not None:
            try:
                self.on_tick(now, live)  # the rules' watchdog: stalled runs, reloads
            except Exception:
                logger.exception("alerts: the rules watchdog failed")
        if batch:
            if not self._write(batch):
                return
        self._commit_late = False
        for event in self._barriers:
            event.set()
        self._barriers = []

    def _drain(self, batch: Batch) -> list:
        """Take what is queued now (a producer faster than this loop must not keep it from
        committing), trimmed with the failed batch to what may be held, and counted as held."""
        queue = self.queue
        popleft = queue.popleft
        with self._drain_lock:
            ops, dropped = self._trim(batch, [popleft() for _ in range(len(queue))])
            self._pending_rows = sum(chunk["n_rows"] for chunk in batch.history) + len(ops)
            self._room_changed()
        self._count_dropped(dropped)
        return ops

    def _take(self, batch: Batch, ops: list) -> None:
        """Sort drained operations into the batch: history rows packed into chunks per run."""
        rows_by_run: dict[str, list] = {}
        last_run, rows = None, []
        for op in ops:
            if type(op) is dict:  # a history row (see ROW_RUN): most of what is queued
                run_id = op.pop(ROW_RUN)
                if run_id is not last_run:
                    rows = rows_by_run.get(run_id)
                    if rows is None:
                        rows = rows_by_run[run_id] = []
                    last_run = run_id
                rows.append(op)
                continue
            tag = op[0]
            if tag == BARRIER:
                self._barriers.append(op[1])
            else:
                try:
                    self._other(batch, op)
                except Exception:  # one bad operation is logged and skipped, never the whole cycle
                    logger.exception("alerts: skipped an operation the writer could not prepare (%s)", tag)
        for run_id, rows in rows_by_run.items():
            repaired: list = []
            try:
                batch.history.extend(history_chunks(run_id, rows, repaired))  # repairs what it must
            except Exception:  # never expected (packing repairs key by key); costs this run's rows only
                logger.exception("alerts: could not encode %d rows of run %s; they are lost", len(rows), run_id)
            self._warn_repaired(run_id, "logged", repaired)
        self._set_pending(batch)

    def _write(self, batch: Batch) -> bool:
        """Commit the batch; on failure keep it (or what salvage leaves of it). True if all is written."""
        try:
            self.store.write_batch(batch)
        except Exception as exc:
            self._failures += 1
            if self._failures in (1, 10) or self._failures % 100 == 0:
                logger.warning("alerts: could not write to %s (%s); keeping %d rows to retry",
                               self.store.safe_url, exc, sum(c["n_rows"] for c in batch.history))
            if self._failures % SALVAGE_AFTER_FAILURES != 0:
                time.sleep(min(0.05 * self._failures, 2.0))
                return False
            # One bad row must not hold back everything else forever: write piece by piece,
            # keep what fails for a passing reason (a lock), drop what can never be written.
            self._pending = left = self._salvage(batch)
            self._set_pending(left)
            if left:
                return False
        else:
            self._pending = Batch()
            self._set_pending(self._pending)
            if batch.deliveries and self.on_deliveries is not None:
                self.on_deliveries()  # wake the relay: the outbox rows are committed
        if self._failures:
            logger.warning("alerts: writing to the store again after %d failed attempts%s", self._failures,
                           f"; {self.dropped_rows} history rows were dropped meanwhile" if self.dropped_rows else "")
        self._failures = 0
        return True

    def _set_pending(self, batch: Batch) -> None:
        """Count what the batch holds, once the drained operations are sorted into it."""
        with self._drain_lock:
            self._pending_rows = (sum(chunk["n_rows"] for chunk in batch.history) + len(batch.runs)
                                  + len(batch.media) + len(batch.alerts) + len(batch.deliveries))
            self._room_changed()

    def _room_changed(self) -> None:
        # log() takes its slow path at the wake length, or sooner when the cap is near.
        self._check_at = max(1, min(WAKE_AT_QUEUE_LENGTH, MAX_PENDING_ROWS + 1 - self._pending_rows))

    def _other(self, batch: Batch, op: tuple) -> None:
        tag = op[0]
        if tag == RUN_UPDATE:
            self._update_run(batch, op[1], op[2])
        elif tag == ALERT:
            row = op[1]
            self._warn_repaired(row.get("run_id"), "alert", [(c, "value") for c in jsoncodec.clean_columns(row)])
            batch.alerts.append(row)
            for delivery in (op[2] if len(op) > 2 and op[2] else ()):
                jsoncodec.clean_columns(delivery)  # its payload repeats the alert's title and text
                batch.deliveries.append(delivery)  # the alert's outbox rows: same transaction
        elif tag == MEDIA:
            _, run_id, step, key, media, relpath = op
            try:
                path = media_path(self.media_root, relpath)  # before mkdir: nothing outside the store
                path.parent.mkdir(parents=True, exist_ok=True)
                meta = media.write(path, self.media_root, run_id)
            except Exception as exc:
                logger.warning("alerts: could not write %s %r of run %s: %s", media.kind, key, run_id, exc)
                return
            repaired: list = []
            row = {"run_id": run_id, "step": step, "key": key, "kind": media.kind, "path": relpath,
                   "meta": jsoncodec.dumps(meta, repaired)}
            repaired += [(c, "value") for c in jsoncodec.clean_columns(row)]
            self._warn_repaired(run_id, f"{media.kind} {key!r}", repaired)
            batch.media.append(row)
        elif tag == NEW_RUN:
            row = op[1]
            self._warn_repaired(row.get("id"), "run", [(c, "value") for c in jsoncodec.clean_columns(row)])
            batch.runs.append(row)

    def _update_run(self, batch: Batch, run_id: str, update: dict) -> None:
        """Columns of a run update as the store takes them: documents encoded, text repaired."""
        fields = dict(update)
        for column in ("config", "summary", "tags"):
            if column in fields and not isinstance(fields[column], str):
                repaired: list = []
                fields[column] = jsoncodec.dumps(fields[column], repaired)
                self._warn_repaired(run_id, column, repaired)
        self._warn_repaired(run_id, "run", [(c, "value") for c in jsoncodec.clean_columns(fields)])
        batch.update_run(run_id, fields)

    def _warn_repaired(self, run_id: Optional[str], where: str, repaired: list) -> None:
        """Say once per run and key what was repaired or skipped to make it storable."""
        for key, what in repaired:
            seen = (run_id, where, key, what)
            if seen in self._warned_keys:
                continue
            if len(self._warned_keys) < MAX_WARNED_KEYS:
                self._warned_keys.add(seen)
            if what == "skipped":
                logger.warning("alerts: run %s: skipped %s key %r: its value cannot be stored (it refers to "
                               "itself or is nested too deep)", run_id, where, key)
            elif what == "key":
                logger.warning("alerts: run %s: %s key %r has characters no database stores (a lone "
                               "surrogate or NUL); stored as %r", run_id, where, key, jsoncodec.clean_text(key))
            else:
                logger.warning("alerts: run %s: the value of %s key %r has characters no database stores "
                               "(a lone surrogate or NUL); stored with U+FFFD in their place", run_id, where, key)

    def _salvage(self, batch: Batch) -> Batch:
        """Write a failing batch one piece at a time; return what failed for a transient reason."""
        left = Batch()
        pieces = ([("runs", row) for row in batch.runs] + [("history", c) for c in batch.history]
                  + [("media", m) for m in batch.media] + [("alerts", a) for a in batch.alerts]
                  + [("deliveries", d) for d in batch.deliveries])
        unwritten_runs: set = set()  # runs whose insert waits: their rows wait with it
        history_waits: set = set()  # runs with a chunk kept back: later chunks wait, to stay in step order
        for kind, item in pieces:
            run_id = item.get("id") if kind == "runs" else item.get("run_id")
            if run_id in unwritten_runs or (kind == "history" and run_id in history_waits):
                getattr(left, kind).append(item)
                continue
            try:
                self.store.write_batch(Batch(**{kind: [item]}))
            except TRANSIENT_STORE_ERRORS:  # locked, disk full, connection lost: worth another try
                getattr(left, kind).append(item)
                if kind == "runs":
                    unwritten_runs.add(run_id)
                elif kind == "history":
                    history_waits.add(run_id)
            except Exception as exc:
                if kind == "runs":  # never drop a run: every row of it would follow
                    left.runs.append(item)
                    unwritten_runs.add(run_id)
                    continue
                self.dropped_items += 1
                logger.error("alerts: dropping one %s row that the store refuses (%s): %r", kind, exc,
                             {k: v for k, v in item.items() if k != "data"})
        for run_id, fields in batch.run_updates.items():
            self._salvage_update(left, run_id, fields)
        return left

    def _salvage_update(self, left: Batch, run_id: str, fields: dict) -> None:
        """Write a run's update whole or, if the store refuses it, column by column: one refused
        column (a summary too odd for the driver) must not cost the run its state or its end."""
        try:
            self.store.write_batch(Batch(run_updates={run_id: fields}))
            return
        except TRANSIENT_STORE_ERRORS:
            left.update_run(run_id, fields)
            return
        except Exception:
            pass
        for column, value in fields.items():
            try:
                self.store.write_batch(Batch(run_updates={run_id: {column: value}}))
            except TRANSIENT_STORE_ERRORS:
                left.update_run(run_id, {column: value})
            except Exception as exc:
                self.dropped_items += 1
                logger.error("alerts: dropping column %s of an update of run %s that the store refuses (%s)",
                             column, run_id, exc)

    def _trim(self, batch: Batch, ops: list) -> tuple[list, int]:
        """Keep at most half of MAX_PENDING_ROWS pending (the failed batch plus what was just drained),
        dropping the oldest: whole chunks of the batch first, then the oldest drained rows. The other
        half is room for the rows logged while the next attempt waits on the database; log() sheds
        those only when they alone fill it. Returns the drained operations kept and the rows dropped."""
        excess = sum(chunk["n_rows"] for chunk in batch.history) + len(ops) - MAX_PENDING_ROWS // 2
        if excess <= 0:
            return ops, 0
        dropped = 0
        while excess > 0 and batch.history:
            chunk = batch.history.pop(0)
            rows = chunk["n_rows"]
            dropped += rows
            excess -= rows
            self._dropped_of(chunk["run_id"], rows)
        if excess > 0:
            kept = []
            for op in ops:
                if excess > 0 and type(op) is dict:  # a history row
                    excess -= 1
                    dropped += 1
                    self._dropped_of(op.get(ROW_RUN))
                else:
                    kept.append(op)  # runs, updates, alerts, barriers: never dropped
            ops = kept
        return ops, dropped

    def _dropped_of(self, run_id: Optional[str], rows: int = 1) -> None:
        with self._drain_lock:
            self._dropped_by_run[run_id] = self._dropped_by_run.get(run_id, 0) + rows

    def dropped_rows_of(self, run_id: str) -> int:
        """History rows of ``run_id`` dropped so far to stay within MAX_PENDING_ROWS."""
        return self._dropped_by_run.get(run_id, 0)

    def _count_dropped(self, rows: int) -> None:
        """Count dropped rows; warn at once the first time, then at most every DROP_WARNING_EVERY s."""
        if not rows:
            return
        with self._drain_lock:  # the logging thread and the writer both drop
            self.dropped_rows += rows
            now = time.monotonic()
            if self._drop_warned_at is not None and now - self._drop_warned_at < DROP_WARNING_EVERY:
                return
            self._drop_warned_at = now
            since, self._dropped_reported = self.dropped_rows - self._dropped_reported, self.dropped_rows
        logger.warning("alerts: the store at %s has not taken writes for a while; dropped %d of the oldest "
                       "history rows (%d in all) to hold at most %d rows in memory", self.store.safe_url,
                       since, self.dropped_rows, MAX_PENDING_ROWS)


def history_chunks(run_id: str, rows: list[dict], repaired: Optional[list] = None) -> list[dict]:
    """Rows of one run as HistoryChunk columns, at most CHUNK_ROWS rows a chunk (keys or values the
    store cannot encode are repaired and noted in ``repaired``)."""
    chunks = []
    for start in range(0, len(rows), CHUNK_ROWS):
        part = rows[start:start + CHUNK_ROWS]
        chunks.append({"run_id": run_id, "first_step": part[0]["_step"], "last_step": part[-1]["_step"],
                       "n_rows": len(part), "last_time": part[-1]["_timestamp"],
                       "data": pack_in_pieces(part, repaired)})
    return chunks


def pack_in_pieces(rows: list[dict], repaired: Optional[list] = None) -> bytes:
    """``jsoncodec.pack_rows(rows)``, byte for byte, packed PACK_ROWS rows at a time: a MessagePack
    array is its header (which depends only on the count) followed by its items, so the pieces'
    items are joined behind one header. Between pieces the training thread can take the GIL."""
    if len(rows) <= PACK_ROWS:
        return _pack(rows, repaired)
    parts = [_array_header(len(rows))]
    for start in range(0, len(rows), PACK_ROWS):
        piece = rows[start:start + PACK_ROWS]
        parts.append(_pack(piece, repaired)[len(_array_header(len(piece))):])
    return b"".join(parts)


_packers = threading.local()  # one writer thread per store: a packer each


def _pack(rows: list[dict], repaired: Optional[list]) -> bytes:
    """``jsoncodec.pack_rows``: the same bytes, through a Packer kept by this thread (its buffer is
    allocated once rather than grown for every call: ~20% less time holding the GIL); rows that do
    not pack as they are go through pack_rows, which repairs them."""
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(default=jsoncodec.fallback)
    try:
        return packer.pack(rows)
    except Exception:  # msgpack empties its buffer on an error: the packer stays usable
        return jsoncodec.pack_rows(rows, repaired)


def _array_header(count: int) -> bytes:
    return msgpack.Packer().pack_array_header(count)


_writers: WriterRegistry[Writer] = WriterRegistry()


def writer_for(store: Store, media_root: Path, interval: float) -> Writer:
    """The process's writer for a store (one thread per database, shared by every run)."""
    return _writers.get((store.url, str(media_root.resolve())), lambda: Writer(store, media_root, interval))


def close_all(timeout: float = 30.0) -> None:
    """Flush and stop every writer (at interpreter exit, after the runs are finished)."""
    _writers.close_all(timeout)
