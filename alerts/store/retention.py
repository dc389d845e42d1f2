"""Retention of old history points: ``ALERTS_HISTORY_RETENTION`` (e.g. ``90d``; unset keeps them all).

History is stored in chunks (a writer cycle's rows of one run, :class:`~alerts.store.models.HistoryChunk`);
a chunk goes once its last row is older than the retention, so a run keeps its recent points and
its summary, alerts and config stay. Deleted in batches: a big backlog never holds the write lock
(SQLite's, which every logging process needs) for long.
"""

from __future__ import annotations

from sqlalchemy import delete, select

from alerts.store.db import Store
from alerts.store.models import HistoryChunk

PRUNE_BATCH = 2_000  # chunks per transaction (a chunk holds up to thousands of points)


def prune_history(store: Store, before: float) -> int:
    """Delete the history chunks whose last point was logged before ``before``; returns how many."""
    old = HistoryChunk.last_time < before
    total = 0
    while True:
        with store.write_transaction() as conn:
            ids = list(conn.execute(select(HistoryChunk.id).where(old).limit(PRUNE_BATCH)).scalars())
            if ids:
                conn.execute(delete(HistoryChunk).where(HistoryChunk.id.in_(ids)))
        total += len(ids)
        if len(ids) < PRUNE_BATCH:
            return total
