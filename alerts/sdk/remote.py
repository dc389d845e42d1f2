"""The remote writer: what a run logs to when ``ALERTS_URL`` points at a server.

``Run`` is the same object as in the embedded mode and ``log()`` the same microsecond append to a deque;
only the thread that drains the deque differs. Every ``interval`` seconds (or sooner when the deque is
long, or on ``flush()``) it turns what was queued into one batch per run (at most
:data:`MAX_ROWS_PER_BATCH` rows, with the run's explicit alerts, its config if it changed, the summary
keys the user set, and its name, tags and notes if the script set them), numbers it, and sends it with
``POST /api/v1/runs/{id}/batches``. A run with nothing new gets a heartbeat every
:data:`~alerts.sdk.worker.HEARTBEAT_EVERY` seconds. Rules are evaluated by the server, not here.

When the server cannot be reached (or answers 5xx, 408, 429, or a timeout), the batches go to the run's
spool folder on disk (fsync'd; :mod:`alerts.sdk.spool`), the writer backs off (exponentially with jitter,
:data:`BACKOFF_FIRST` to :data:`BACKOFF_MAX` seconds, the server's ``Retry-After`` honoured) and then
replays the spool in order. A replayed batch the server stored already is answered ``stored=false``:
harmless. Each run's spool is bounded by ``ALERTS_SPOOL_MAX_BYTES``: past it the oldest history rows are
dropped (counted, with a warning); alerts, config, summary, the run's name, tags and notes, and its end
never are. A 4xx other than 401/403 means the request can never be taken: it is dropped with an error
naming what the server said.

At exit what is still unacknowledged stays in the spool; the next process using the same ``ALERTS_DIR``
with the same server and key replays it (``alerts sync`` too).

Like the embedded writer, it never raises into the training loop, and what it holds in memory is bounded
(:data:`~alerts.sdk.worker.MAX_PENDING_ROWS` queued rows, the oldest dropped past it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional

from alerts import clock as _clock
from alerts.errors import RunInUseError
from alerts.sdk.ingest import AUTH, REJECT, IngestClient, IngestError, key_id
from alerts.sdk.runlog import RunLog
from alerts.sdk.spool import BATCH, CREATE, FINISH, folders
from alerts.sdk.writers import WriterRegistry
from alerts.sdk.worker import (ALERT, BARRIER, DROP_WARNING_EVERY, HEARTBEAT_EVERY, MAX_PENDING_ROWS,
                               MEDIA, ROW_RUN, RUN_UPDATE, WAKE_AT_QUEUE_LENGTH, YIELD_AT_QUEUE_LENGTH, YIELD_EVERY)

logger = logging.getLogger("alerts")

STARTING = object()  # RunLog.run while init() prepares the run

# The contract's limits on one batch.
MAX_ROWS_PER_BATCH = 10_000
MAX_KEYS_PER_ROW = 1_000
# Rows encoded in one json.dumps call: it holds the GIL throughout, so a 10,000-row batch in one call
# would stall the training thread for ~10 ms. Pieces are joined into the same JSON text.
ENCODE_ROWS = 1_000
# Retry delays after a failure (seconds): doubled each time, with jitter, up to the maximum; while
# finish() waits, at most FLUSH_RETRY_MAX, so that a server restarting within the wait is caught.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
FLUSH_RETRY_MAX = 1.0
# After a 401/403 (a revoked key) the writer keeps everything and asks again this much later.
AUTH_RETRY = 60.0
# How often a writer looks for spools left by earlier processes (seconds).
ORPHAN_SCAN_EVERY = 60.0
# The longest wait_duration sent (the server takes finite values only).
CENTURY = 100 * 365 * 86400.0
# The run's own fields a script may set after init() (run.name = ...), sent as a batch's "run".
IDENTITY_FIELDS = ("name", "tags", "notes")
# Default bound of one run's spool folder (ALERTS_SPOOL_MAX_BYTES).
SPOOL_MAX_BYTES = 1 << 30


def backoff(failures: int, retry_after: Optional[float], cap: float = BACKOFF_MAX,
            rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the ``failures``-th failure in a row: the server's ``Retry-After`` if it
    gave one (within ``cap``), else BACKOFF_FIRST doubled per failure, capped, with ±25% jitter."""
    if retry_after is not None:
        return min(retry_after, cap)
    base = min(cap, BACKOFF_FIRST * 2 ** max(0, failures - 1))
    return base * (0.75 + 0.5 * rand())


class _Barrier:
    """A flush() waiting: done when everything formed before it is acknowledged (or, ``durable``
    only, acknowledged or on disk)."""

    def __init__(self, durable: bool, timeout: Optional[float]) -> None:
        self.durable = durable
        self.event = threading.Event()
        self.ok = False
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.marks: Optional[dict[str, int]] = None  # run id -> last item index it waits for

    def done(self, ok: bool) -> None:
        self.ok = ok
        self.event.set()


class _Accum:
    """What one cycle drained for one run."""

    __slots__ = ("rows", "alerts", "config", "identity", "finish")

    def __init__(self) -> None:
        self.rows: list = []
        self.alerts: list = []
        self.config: Optional[dict] = None
        self.identity: Optional[dict] = None  # run.name / tags / notes set since the last cycle
        self.finish: Optional[dict] = None


class RemoteWriter:
    """Sends queued operations to one server with one API key, on a daemon thread (see the module
    docstring). Implements what ``Run`` uses of :class:`~alerts.sdk.worker.Writer`."""

    def __init__(self, url: str, api_key: str, spool_root: Path, *, interval: float = 0.2,
                 spool_max_bytes: int = SPOOL_MAX_BYTES, clock: Optional[Callable[[], float]] = None,
                 media_root: Optional[Path] = None) -> None:
        self.url = url
        # Where run.dir and wandb.save's files live, as in the embedded mode (they are not sent to the
        # server yet): the script can write and save them; without it run.dir raised into the script.
        self.media_root = media_root if media_root is not None else spool_root.parent / "media"
        self.key_id = key_id(api_key)
        self.spool_root = spool_root
        self.interval = interval
        self.spool_max_bytes = spool_max_bytes
        self._clock = clock if clock is not None else _clock.now  # looked up now: tests swap it
        self._client = IngestClient(url, api_key)  # the thread's own
        self.queue: deque = deque()
        self.append = self.queue.append  # what the hot path calls
        self._wake = threading.Event()
        self._drain_lock = threading.RLock()
        self._live: dict[str, Any] = {}
        self._live_lock = threading.RLock()
        self._logs: dict[str, RunLog] = {}
        self._logs_lock = threading.RLock()
        self._barriers: list[_Barrier] = []
        self._flush_waiters = 0
        self._behind_calls = 0
        self._commit_late = False
        self._failures = 0
        self.retry_at = 0.0  # writer clock: no request before this (backing off)
        self.down_reason: Optional[str] = None
        self._next_orphan_scan = 0.0
        self._stopping = False
        self.dropped_rows = 0
        self._dropped_reported = 0
        self._drop_warned_at: Optional[float] = None
        self.rejected = 0  # items the server refused for good
        self.pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="alerts-remote", daemon=True)
        self._thread.start()

    # -- what init() calls -----------------------------------------------------------------------

    def meta(self, run_id: str) -> dict:
        """What a spool folder of this writer records about where its items go."""
        return {"run_id": run_id, "server": self.url, "key_id": self.key_id, "offset": None}

    def open_log(self, run_id: str) -> RunLog:
        """The log a run starting now continues: this run's leftovers in the spool (the thread may
        be replaying them already; they are sent before anything the run logs), or a fresh one that
        :meth:`add_log` hands to the thread once init() has created the run. Raises
        :class:`~alerts.errors.RunInUseError` if another process holds the run's spool."""
        with self._logs_lock, self._live_lock:
            if run_id in self._live or (run_id in self._logs and self._logs[run_id].run is STARTING):
                raise RunInUseError(f"run {run_id} is already logging in this process")
            log = self._logs.get(run_id)  # an ended run's, or leftovers being replayed: continued
            if log is None:
                log = RunLog.claim(self.spool_root, run_id)
                if log is None and (self.spool_root / run_id).exists():
                    raise RunInUseError(f"run {run_id}'s spool ({self.spool_root / run_id}) is held by another "
                                        "process (a live run, or `alerts sync`)")
                if log is None:
                    log = RunLog(run_id, self.spool_root, self.meta(run_id))
                else:
                    self._logs[run_id] = log
            # The thread must not let it go before the run attaches: add_log() hands a fresh log over
            # before the Run exists, and a cycle in between would forget it (and drop all it logs).
            log.run = STARTING
            return log

    def add_log(self, log: RunLog) -> None:
        """Hand a run's log to the thread (init() is done with it)."""
        log.last_contact = self._clock()
        with self._logs_lock:
            self._logs[log.run_id] = log
        self._wake.set()

    def note_down(self, error: IngestError) -> None:
        """init() could not reach the server: back off before the thread tries again."""
        self._went_down(error, self._clock())

    # -- what Run calls ----------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def wake_if_long(self) -> None:
        """Wake the thread early when the queue is long, yield the GIL now and then when it is far
        behind, shed the oldest rows past MAX_PENDING_ROWS (one len() and a compare while short)."""
        length = len(self.queue)
        if length >= WAKE_AT_QUEUE_LENGTH:
            if not self._wake.is_set():
                self._wake.set()
            if length > MAX_PENDING_ROWS:
                self._shed()
            elif length >= YIELD_AT_QUEUE_LENGTH:
                self._behind_calls += 1
                if self._behind_calls >= YIELD_EVERY:
                    self._behind_calls = 0
                    time.sleep(0)

    @property
    def held_rows(self) -> int:
        """Operations queued plus history rows formed into batches and held in memory."""
        with self._logs_lock:
            logs = list(self._logs.values())
        return len(self.queue) + sum(i.rows for log in logs for i in list(log.items) if not i.on_disk)

    def attach(self, run: Any) -> None:
        with self._logs_lock, self._live_lock:
            self._live[run.id] = run
            log = self._logs.get(run.id)
            if log is not None:
                log.run = run

    def detach(self, run_id: str) -> None:
        with self._live_lock:
            self._live.pop(run_id, None)

    def flush(self, timeout: Optional[float] = 30.0) -> bool:
        """Wait until everything queued so far is acknowledged by the server; False if that did not
        happen within ``timeout`` (or cannot: the server is down past it). What is not acknowledged
        stays in memory or in the spool and is sent later."""
        return self._wait(_Barrier(False, timeout), timeout)

    def commit_now(self, timeout: float) -> bool:
        """What makes ``alert()`` durable when it returns: wait (at most ``timeout``) until what is
        queued is acknowledged or in the spool. Does not wait again after a wait that ran out, until
        the thread has completed a cycle; never raises."""
        if self._commit_late or threading.current_thread() is self._thread:
            self._wake.set()
            return False
        try:
            done = self._wait(_Barrier(True, timeout), timeout)
        except Exception:  # never into the training loop
            logger.exception("alerts: could not wait for the remote writer")
            return False
        if not done:
            self._commit_late = True
        return done

    def _wait(self, barrier: _Barrier, timeout: Optional[float]) -> bool:
        if not self._thread.is_alive():
            return False
        self._flush_waiters += 1
        try:
            self.queue.append((BARRIER, barrier))
            self._wake.set()
            barrier.event.wait(timeout)
            return barrier.ok
        finally:
            self._flush_waiters -= 1

    def unflushed_note(self, run_id: str, timeout: float) -> str:
        """What finish() says when its flush did not complete: what is left, where, and why."""
        with self._logs_lock:
            log = self._logs.get(run_id)
        if log is None:
            return f"not everything was sent within {timeout:.0f}s"
        try:
            batches, rows, alerts, finish = log.counts()
        except RuntimeError:  # changed while counted: say less
            batches, rows, alerts, finish = 0, 0, 0, True
        parts = [f"{batches} batch(es) ({rows} history rows, {alerts} alerts)"]
        if finish:
            parts.append("the run's end")
        why = f" ({self.down_reason})" if self.down_reason else ""
        return (f"{' and '.join(parts)} not acknowledged by {self.url} within {timeout:.0f}s{why}; kept in "
                f"{log.folder} and sent by the next run that logs to this folder, or by `alerts sync`")

    def close(self, timeout: float = 30.0) -> bool:
        """Flush (bounded; not at all while the server is down: finish() waited already), put what
        is left in the spool, stop the thread."""
        flushed = self.flush(0 if self.down_reason else timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        return flushed

    def _shed(self) -> None:
        """Drop the oldest queued history rows until the queue is a tenth under MAX_PENDING_ROWS."""
        with self._drain_lock:
            queue = self.queue
            excess = len(queue) - (MAX_PENDING_ROWS - MAX_PENDING_ROWS // 10)
            kept, dropped = [], 0
            while dropped < excess and queue:
                op = queue.popleft()
                if type(op) is dict:  # a history row (see ROW_RUN)
                    dropped += 1
                else:
                    kept.append(op)  # alerts, updates, barriers: never dropped
            queue.extendleft(reversed(kept))
        self._count_dropped(dropped, "the server is not keeping up")

    # -- the thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self._cycle()
            except Exception:  # never let the thread die: log, keep what is held, try again
                logger.exception("alerts: the remote writer failed; will retry")
            if self._stopping and not self.queue:
                self._stop()
                return

    def _cycle(self) -> None:
        now = self._clock()
        self._barriers.extend(self._form(now))
        try:
            self._pump(now)
            self._commit_late = False
        finally:  # a waiter is released (or keeps waiting) whatever the pump met
            self._settle(now)

    def _form(self, now: float) -> list[_Barrier]:
        """Drain the queue and turn it into items of the runs' logs; returns the barriers drained."""
        with self._drain_lock:
            queue = self.queue
            ops = [queue.popleft() for _ in range(len(queue))]
        runs: dict[str, _Accum] = {}
        barriers = []
        for op in ops:
            if type(op) is dict:  # a history row, its run's id under ROW_RUN
                run_id = op.pop(ROW_RUN)
                acc = runs.get(run_id)
                if acc is None:
                    acc = runs[run_id] = _Accum()
                acc.rows.append(op)
                continue
            tag = op[0]
            if tag == BARRIER:
                barriers.append(op[1])
            elif tag == ALERT:
                runs.setdefault(op[1]["run_id"], _Accum()).alerts.append(_alert_payload(op[1]))
            elif tag == RUN_UPDATE:
                fields = op[2]
                acc = runs.setdefault(op[1], _Accum())
                if "state" in fields:
                    acc.finish = fields
                elif "config" in fields:
                    acc.config = fields["config"]
                else:
                    changed = {k: fields[k] for k in IDENTITY_FIELDS if k in fields}
                    if changed:  # the last value of each field wins, as it would in the store
                        acc.identity = {**(acc.identity or {}), **changed}
            elif tag != MEDIA:  # media are not sent to a server (the run's hook warned once)
                logger.debug("alerts: the remote writer ignores operation %r", tag)
        with self._logs_lock:
            logs = dict(self._logs)
        for run_id, log in logs.items():
            acc = runs.pop(run_id, None)
            summary = self._explicit_summary(log)
            if acc is None and summary is None:
                continue
            try:
                self._form_items(log, acc or _Accum(), summary)
            except Exception:  # one run's bad data must not stop the others
                logger.exception("alerts: could not prepare the data of run %s; it is lost", run_id)
        for run_id in runs:
            logger.warning("alerts: data for run %s, which this writer does not know, is dropped", run_id)
        for barrier in barriers:
            barrier.marks = {run_id: log.next_index - 1 for run_id, log in logs.items()}
        return barriers

    def _explicit_summary(self, log: RunLog) -> Optional[dict]:
        """The summary keys the user set since the last batch, with their current values (the server
        applies them after the batch's rows); None if none."""
        run = log.run
        if run is None or run is STARTING:
            return None
        summary = run.summary
        touched = summary._touched
        if not touched:
            return None
        object.__setattr__(summary, "_touched", set())
        data = summary._data
        return {key: data[key] for key in touched if key in data} or None

    def _form_items(self, log: RunLog, acc: _Accum, summary: Optional[dict]) -> None:
        if log.finished:
            if acc.rows or acc.alerts:
                logger.warning("alerts: run %s has ended: %d rows logged after its end are dropped",
                               log.run_id, len(acc.rows))
            return
        rows = [self._row_payload(log, row) for row in acc.rows]
        chunks = [rows[start:start + MAX_ROWS_PER_BATCH] for start in range(0, len(rows), MAX_ROWS_PER_BATCH)]
        if not chunks:
            chunks = [[]]
        for position, chunk in enumerate(chunks):
            last = position == len(chunks) - 1
            # The alerts, config and summary ride with the last batch: after the rows logged before them.
            body = _batch_body(chunk, acc.alerts if last else (), acc.config if last else None,
                               summary if last else None)
            if body != b"{}":
                log.add(BATCH, body, rows=len(chunk), alerts=len(acc.alerts) if last else 0)
        if acc.identity:
            # The run's name, tags and notes in a batch of their own, after the others: a server from
            # before they were sent refuses it (an unknown field), and only the change is lost.
            log.add(BATCH, _batch_body([], (), None, None, acc.identity))
        if acc.finish is not None:
            log.add(FINISH, _finish_body(acc.finish))

    def _row_payload(self, log: RunLog, row: dict) -> dict:
        """A logged row in the contract's shape: ``{"step", "time", "values"}``. The server adds
        ``_runtime`` (from ``time``) itself; a ``_timestamp`` the script logged that is not a finite
        number stays a value, and the row's time is now."""
        step = row.pop("_step")
        row.pop("_runtime", None)
        when = row.pop("_timestamp", None)
        if type(when) is not float or not math.isfinite(when):
            if type(when) is int and not isinstance(when, bool) and abs(when) < 2**53:
                when = float(when)
            else:
                row["_timestamp"] = when
                when = self._clock()
        if len(row) > MAX_KEYS_PER_ROW:
            if not log.warned_keys:
                log.warned_keys = True
                logger.warning("alerts: run %s: a row has %d keys; a server takes %d a row, the others are "
                               "dropped", log.run_id, len(row), MAX_KEYS_PER_ROW)
            row = dict(list(row.items())[:MAX_KEYS_PER_ROW])
        return {"step": step, "time": when, "values": row}

    def _pump(self, now: float) -> None:
        """Send what the logs hold, oldest first; on a failure worth retrying, spool everything and
        back off."""
        with self._logs_lock:
            logs = list(self._logs.values())
        if now >= self._next_orphan_scan and now >= self.retry_at:
            self._next_orphan_scan = now + ORPHAN_SCAN_EVERY
            logs += self._adopt_orphans()
        if now < self.retry_at:
            self._spool(logs)
            return
        try:
            for log in logs:
                if log.send(self._client, self._rejected):
                    log.last_contact = now
                if log.server_dropped > log.server_dropped_told:
                    logger.warning("alerts: run %s: the server did not store %d rows logged at steps it already "
                                   "had (a run resumed while the server was unreachable starts at step 0: pass "
                                   "step= to log())", log.run_id, log.server_dropped - log.server_dropped_told)
                    log.server_dropped_told = log.server_dropped
            self._heartbeats(logs, now)
        except IngestError as exc:
            self._went_down(exc, now)
            self._spool(logs)
            return
        if self._failures:
            logger.warning("alerts: %s answers again; what was kept meanwhile has been sent", self.url)
            if self.dropped_rows > self._dropped_reported:
                logger.warning("alerts: %d history rows were dropped during the outage", self.dropped_rows)
                self._dropped_reported = self.dropped_rows
        self._failures = 0
        self.down_reason = None
        self._forget_done(logs)

    def _heartbeats(self, logs: list[RunLog], now: float) -> None:
        for log in logs:
            if log.run is not None and log.run is not STARTING and not log.finished and not log.items and \
                    now - log.last_contact >= HEARTBEAT_EVERY:
                try:
                    self._client.heartbeat(log.run_id)
                except IngestError as exc:
                    if exc.verdict != REJECT:
                        raise
                    logger.debug("alerts: heartbeat of run %s refused: %s", log.run_id, exc)
                log.last_contact = now

    def _went_down(self, exc: IngestError, now: float) -> None:
        self._failures += 1
        cap = FLUSH_RETRY_MAX if self._flush_waiters else BACKOFF_MAX
        delay = AUTH_RETRY if exc.verdict == AUTH else backoff(self._failures, exc.retry_after, cap)
        self.retry_at = now + delay
        self.down_reason = str(exc)
        if self._failures in (1, 10) or self._failures % 100 == 0:
            logger.warning("alerts: %s; keeping the run's data on disk and trying again in %.1fs%s", exc, delay,
                           " (the API key was refused: `alerts login` with a valid key, then `alerts sync`)"
                           if exc.verdict == AUTH else "")

    def _spool(self, logs: list[RunLog]) -> None:
        for log in logs:
            try:
                dropped = log.spool_memory(self.spool_max_bytes)
            except OSError as exc:  # disk full, read-only: keep it in memory and say so
                logger.warning("alerts: could not write the spool of run %s (%s); keeping it in memory",
                               log.run_id, exc)
                continue
            self._count_dropped(dropped, f"the spool of run {log.run_id} reached {self.spool_max_bytes} bytes")

    def _rejected(self, log: RunLog, item, exc: IngestError) -> None:
        self.rejected += 1
        what = {CREATE: "the run's creation", BATCH: f"a batch of {item.rows} rows and {item.alerts} alerts",
                FINISH: "the run's end"}[item.kind]
        extra = "; the run's data cannot be sent and is dropped" if item.kind == CREATE else ""
        logger.error("alerts: run %s: %s was refused for good (%s)%s", log.run_id, what, exc, extra)

    def _forget_done(self, logs: list[RunLog]) -> None:
        """Logs that have nothing left and will get nothing more: their spool folder goes."""
        with self._logs_lock, self._live_lock:  # open_log() takes the logs lock to reuse one
            for log in logs:
                if log.items or log.run is STARTING or (log.run is not None and not log.finished) \
                        or log.run_id in self._live:
                    continue
                log.release()
                if self._logs.get(log.run_id) is log:
                    del self._logs[log.run_id]

    def _adopt_orphans(self) -> list[RunLog]:
        """Spool folders left by earlier processes for this server and key: replayed from now on."""
        adopted = []
        with self._logs_lock:
            known = set(self._logs)
        for run_id in folders(self.spool_root):
            if run_id in known:
                continue
            log = RunLog.claim(self.spool_root, run_id)
            if log is None:
                continue
            if log.meta.get("server") != self.url or log.meta.get("key_id") != self.key_id:
                log.spool.release(remove=False)  # another server's or another key's: not ours to send
                continue
            logger.info("alerts: replaying %d items left in %s", len(log.items), log.folder)
            with self._logs_lock:
                self._logs[run_id] = log
            adopted.append(log)
        return adopted

    def _settle(self, now: float) -> None:
        """Release the barriers that are done, or that cannot be done before their deadline."""
        with self._logs_lock:
            logs = dict(self._logs)
        waiting = []
        for barrier in self._barriers:
            marks = barrier.marks or {}
            check = "durable_through" if barrier.durable else "acked_through"
            if all(getattr(logs[r], check)(m) for r, m in marks.items() if r in logs):
                barrier.done(True)
            elif barrier.deadline is not None and now < self.retry_at and \
                    self.retry_at - now > barrier.deadline - time.monotonic():
                barrier.done(False)  # the next try comes after the wait ends: no point waiting
            elif barrier.deadline is not None and time.monotonic() >= barrier.deadline:
                barrier.done(False)
            else:
                waiting.append(barrier)
        self._barriers = waiting

    def _stop(self) -> None:
        """At close: what the server has not acknowledged goes to the spool; the folders are released."""
        with self._logs_lock:
            logs = list(self._logs.values())
            self._logs.clear()
        self._spool(logs)
        for log in logs:
            log.release()
        for barrier in self._barriers:
            barrier.done(False)
        self._barriers = []
        self._client.close()

    def _count_dropped(self, rows: int, why: str) -> None:
        if not rows:
            return
        self.dropped_rows += rows
        now = time.monotonic()
        if self._drop_warned_at is not None and now - self._drop_warned_at < DROP_WARNING_EVERY:
            return
        self._drop_warned_at = now
        since, self._dropped_reported = self.dropped_rows - self._dropped_reported, self.dropped_rows
        logger.warning("alerts: %s: dropped %d of the oldest history rows (%d in all)", why, since,
                       self.dropped_rows)


def _alert_payload(row: dict) -> dict:
    """An explicit alert as the contract sends it, from the alert record ``Run.alert`` made (a
    ``wait_duration`` the server cannot take, negative or infinite, is sent as 0 or a century)."""
    wait = row["wait_duration"]
    wait = 0.0 if not wait > 0 else min(wait, CENTURY)
    return {"title": row["title"], "text": row["text"], "level": row["level"],
            "wait_duration": wait, "created_at": row["created_at"], "step": row["step"],
            "suppressed": row["reason"] if row["outcome"] == "suppressed" else None}


def _dumps(value: Any) -> str:
    """JSON with NaN and infinities as the bare tokens the contract accepts; a value JSON has no form
    for is sent as its text rather than costing the batch."""
    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return json.dumps(value, separators=(",", ":"), default=str)


def _batch_body(rows: list, alerts, config: Optional[dict], summary: Optional[dict],
                identity: Optional[dict] = None) -> bytes:
    """A batch's JSON body, without its seq (added when it is sent). Rows are encoded ENCODE_ROWS at a
    time: between pieces the training thread can take the GIL."""
    parts = []
    if rows:
        pieces = [_dumps(rows[start:start + ENCODE_ROWS])[1:-1] for start in range(0, len(rows), ENCODE_ROWS)]
        parts.append('"rows":[' + ",".join(pieces) + "]")
    if alerts:
        parts.append('"alerts":' + _dumps(list(alerts)))
    if config is not None:
        parts.append('"config":' + _dumps(config))
    if summary:
        parts.append('"summary":' + _dumps(summary))
    if identity:
        parts.append('"run":' + _dumps(identity))
    return ("{" + ",".join(parts) + "}").encode()


def _finish_body(fields: dict) -> bytes:
    body = {"state": fields["state"], "exit_code": fields.get("exit_code")}
    for key in ("error_type", "error_text"):
        if fields.get(key) is not None:
            body[key] = fields[key]
    return _dumps(body).encode()


# -- one writer per server, key and spool folder in a process ------------------------------------

_writers: WriterRegistry[RemoteWriter] = WriterRegistry()


def writer_for(url: str, api_key: str, spool_root: Path, interval: float, spool_max_bytes: int,
               media_root: Optional[Path] = None) -> RemoteWriter:
    """The process's remote writer for this server, key and spool folder (``media_root``: the local
    folder of the runs' files, ``run.dir``)."""
    return _writers.get((url, key_id(api_key), str(spool_root.resolve())),
                        lambda: RemoteWriter(url, api_key, spool_root, interval=interval,
                                             spool_max_bytes=spool_max_bytes, media_root=media_root))


def close_all(timeout: float = 30.0) -> None:
    """Flush and stop every remote writer (at interpreter exit, after the runs are finished)."""
    _writers.close_all(timeout)
