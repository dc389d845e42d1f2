"""Pages of runs and of a run's history, for lists that page with a keyset cursor (the server's API).

Both read one page at the cost of an index range scan, however deep the page: runs newest first by
``(created_at, id)``; history in step order, from the chunk that holds the first step wanted.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from sqlalchemy import and_, or_, select
from sqlmodel import Session

from alerts.store import jsoncodec
from alerts.store.db import Store
from alerts.store.models import HistoryChunk, RunRecord

# Chunks read per query while filling a history page.
CHUNKS_PER_READ = 8


def runs_page(store: Store, *, limit: int, after: Optional[tuple[float, str]] = None,
              owner: Optional[str] = None, project: Optional[str] = None, group: Optional[str] = None,
              state: Optional[str] = None) -> list[RunRecord]:
    """Up to ``limit`` runs, newest first (ties by id, descending), after the key ``(created_at, id)``
    of the previous page's last run; the filters are exact matches."""
    query = select(RunRecord)
    for column, value in ((RunRecord.owner, owner), (RunRecord.project, project), (RunRecord.group, group),
                          (RunRecord.state, state)):
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        created_at, run_id = after
        query = query.where(or_(RunRecord.created_at < created_at,
                                and_(RunRecord.created_at == created_at, RunRecord.id < run_id)))
    query = query.order_by(RunRecord.created_at.desc(), RunRecord.id.desc()).limit(limit)
    with Session(store.engine) as session:
        return list(session.execute(query).scalars().all())


def history_page(store: Store, run_id: str, *, limit: int, after_step: Optional[int] = None,
                 min_step: Optional[int] = None, max_step: Optional[int] = None,
                 keys: Optional[Sequence[str]] = None) -> list[dict]:
    """Up to ``limit`` history rows of a run in step order, with ``min_step <= _step <= max_step`` and
    ``_step > after_step``. With ``keys``, only the rows that have every one of them, reduced to
    ``_step``, ``_timestamp`` and those keys (as ``Api().run().scan_history(keys=)`` reads them)."""
    low = min_step if min_step is not None else None
    if after_step is not None and (low is None or after_step + 1 > low):
        low = after_step + 1
    rows: list[dict] = []
    for chunk_rows in _chunks_from(store, run_id, low, max_step):
        for row in chunk_rows:
            step = row.get("_step")
            if not isinstance(step, int) or (low is not None and step < low):
                continue
            if max_step is not None and step > max_step:
                return rows
            if keys:
                if not all(k in row for k in keys):
                    continue
                row = {"_step": step, "_timestamp": row.get("_timestamp"), **{k: row[k] for k in keys}}
            rows.append(row)
            if len(rows) >= limit:
                return rows
    return rows


def _chunks_from(store: Store, run_id: str, low: Optional[int], high: Optional[int]) -> Iterable[list]:
    """The run's chunks in step order, from the one holding ``low`` (or the first) to the one holding
    ``high`` (or the last), decoded. Chunks of a run do not overlap: each starts past the last's end."""
    columns = (HistoryChunk.first_step, HistoryChunk.id, HistoryChunk.data)
    with store.engine.connect() as conn:
        if low is not None:  # the chunk that straddles ``low``, if any: the last one starting at or before it
            straddle = conn.execute(
                select(*columns, HistoryChunk.last_step)
                .where(HistoryChunk.run_id == run_id, HistoryChunk.first_step <= low)
                .order_by(HistoryChunk.first_step.desc(), HistoryChunk.id.desc()).limit(1)).first()
        else:
            straddle = None
    key = None  # (first_step, id) of the last chunk read
    if straddle is not None and straddle.last_step >= low:
        yield jsoncodec.unpack_rows(straddle.data)
        key = (straddle.first_step, straddle.id)
    start = low if low is not None else None
    while True:
        query = select(*columns).where(HistoryChunk.run_id == run_id)
        if key is not None:
            query = query.where(or_(HistoryChunk.first_step > key[0],
                                    and_(HistoryChunk.first_step == key[0], HistoryChunk.id > key[1])))
        elif start is not None:
            query = query.where(HistoryChunk.first_step >= start)
        if high is not None:
            query = query.where(HistoryChunk.first_step <= high)
        query = query.order_by(HistoryChunk.first_step, HistoryChunk.id).limit(CHUNKS_PER_READ)
        with store.engine.connect() as conn:
            chunks = conn.execute(query).all()
        for chunk in chunks:
            yield jsoncodec.unpack_rows(chunk.data)
        if len(chunks) < CHUNKS_PER_READ:
            return
        key = (chunks[-1].first_step, chunks[-1].id)
