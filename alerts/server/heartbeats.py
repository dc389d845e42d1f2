"""Heartbeats written together: every live remote run sends one each 10 s (10,000 runs: 1,000 a second),
and each was a request handed to a worker thread for one UPDATE and one commit of its own.

:meth:`HeartbeatWriter.beat` is awaited on the event loop: it queues the run's UPDATE and waits for it.
One writer thread takes every heartbeat queued meanwhile and applies them in one transaction (an UPDATE
each, in run id order, one commit), then answers each waiting request with its row count; if that
transaction fails (a deadlock, a busy store), each heartbeat is tried again in a transaction of its
own, so one failure is answered to its own request only. A request is answered only after its
heartbeat is committed, as before; only the commits and thread hand-offs are shared. Under a steady
flow of heartbeats from many connections, one commit serves all that arrived while the previous one
ran.

The writer thread is started at the first heartbeat and ends after :data:`IDLE_EXIT_S` without any
(so an app made and dropped, as tests do, leaves no thread behind for long).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Optional

from sqlalchemy import bindparam, update

from alerts.store.db import Store
from alerts.store.models import RunRecord

logger = logging.getLogger("alerts.server")

# States in which a heartbeat keeps a run alive (a ``crashed`` verdict is taken back).
LIVE_STATES = ("running", "crashed")
# Columns that go back to empty when a run is running again.
ALIVE_AGAIN = {"state": "running", "finished_at": None, "exit_code": None, "error_type": None, "error_text": None}
# Seconds the writer thread waits for more heartbeats before it ends.
IDLE_EXIT_S = 2.0
# Heartbeats applied in one transaction at most (the rest wait for the next one).
MAX_PER_COMMIT = 1_000

# A heartbeat's one statement, built once (building it cost about as much as running it). The owner is
# part of the condition: another user's run is neither changed nor told apart from a missing one.
_HEARTBEAT = (update(RunRecord).where(RunRecord.id == bindparam("b_run_id"), RunRecord.state.in_(LIVE_STATES))
              .values(**ALIVE_AGAIN, heartbeat_at=bindparam("b_now")))
_HEARTBEAT_OF_OWNER = _HEARTBEAT.where(RunRecord.owner == bindparam("b_owner"))


class HeartbeatWriter:
    """Applies heartbeats of one store, many per commit (see the module's docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[tuple[str, Optional[str], float, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._cond = threading.Condition(threading.Lock())
        self._thread: Optional[threading.Thread] = None

    async def beat(self, run_id: str, owner: Optional[str], now: float) -> int:
        """Set run ``run_id``'s heartbeat to ``now`` if it is live and (unless ``owner`` is None, an
        admin's call) owned by ``owner``; how many rows changed (0 or 1), once committed."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._cond:
            self._pending.append((run_id, owner, now, loop, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alerts-heartbeats", daemon=True)
                self._thread.start()
            else:
                self._cond.notify()
        return await future

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._cond.wait(IDLE_EXIT_S)
                if not self._pending:
                    self._thread = None
                    return
                taken, self._pending = self._pending[:MAX_PER_COMMIT], self._pending[MAX_PER_COMMIT:]
            self._apply(taken)

    def _apply(self, taken: list) -> None:
        # In run id order: two commits of this kind take their rows' locks (PostgreSQL) in one order.
        taken.sort(key=lambda beat: beat[0])
        try:
            with self.store.engine.begin() as conn:
                counts: list[Any] = [self._update(conn, beat) for beat in taken]
        except Exception:
            # One failure (a deadlock with another transaction, a busy store) must not fail the
            # others: each is tried again alone, and only what fails alone is answered with its error.
            counts = []
            for beat in taken:
                try:
                    with self.store.engine.begin() as conn:
                        counts.append(self._update(conn, beat))
                except Exception as exc:
                    logger.warning("alerts: could not store the heartbeat of run %r: %s", beat[0], type(exc).__name__)
                    counts.append(exc)
        for (_run_id, _owner, _now, loop, future), count in zip(taken, counts):
            try:
                loop.call_soon_threadsafe(_settle, future, count)
            except RuntimeError:  # that request's loop has closed (the server is stopping)
                pass

    @staticmethod
    def _update(conn: Any, beat: tuple) -> int:
        run_id, owner, now = beat[0], beat[1], beat[2]
        statement = _HEARTBEAT if owner is None else _HEARTBEAT_OF_OWNER
        return conn.execute(statement, {"b_run_id": run_id, "b_owner": owner, "b_now": now}).rowcount


def _settle(future: asyncio.Future, outcome: Any) -> None:
    if future.done():  # the request was cancelled (its client went away)
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
