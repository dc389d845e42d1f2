"""Named leases in the store: at most one holder of a job (the detached relay) per store.

Every change is a compare-and-set on the row as it was read, so two processes taking a free lease at
once (two SQLite processes, or hosts on one PostgreSQL) never both win. Nothing here reads a clock:
callers pass ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from sqlalchemy import delete, select, update

from alerts.store.db import Store
from alerts.store.models import LeaseRecord


@dataclass(frozen=True)
class Holder:
    """Who holds (or wants) a lease: a unique name, its host and, once it runs, its process id."""

    name: str
    host: str
    pid: Optional[int] = None


def read(store: Store, name: str) -> Optional[LeaseRecord]:
    """The lease row, held or stale, or None if nobody ever took it (or it was released)."""
    with store.engine.connect() as conn:
        row = conn.execute(select(LeaseRecord).where(LeaseRecord.name == name)).first()
    return LeaseRecord.model_validate(row._mapping) if row is not None else None


def is_free(lease: Optional[LeaseRecord], holder: Holder, now: float, is_alive: Callable[[int], bool]) -> bool:
    """Whether ``holder`` may take ``lease`` at ``now``: nobody holds it, it ran out, it is its own,
    or its holder was a process of the same host that is gone (killed: no need to wait it out)."""
    if lease is None or lease.until < now or lease.holder == holder.name:
        return True
    return lease.host == holder.host and lease.pid is not None and not is_alive(lease.pid)


def acquire(store: Store, name: str, holder: Holder, now: float, ttl: float,
            is_alive: Callable[[int], bool]) -> bool:
    """Take the lease ``name`` for ``holder`` until ``now + ttl`` if it is free; return whether it did."""
    seen = read(store, name)
    if not is_free(seen, holder, now, is_alive):
        return False
    values = dict(holder=holder.name, host=holder.host, pid=holder.pid, until=now + ttl, renewed_at=now)
    with store.engine.begin() as conn:
        if seen is None:
            query = store._insert_ignoring_duplicates(LeaseRecord).values(name=name, acquired_at=now, **values)
            if store.is_sqlite:
                return conn.execute(query).rowcount == 1
            # psycopg reports rowcount -1 for INSERT ... ON CONFLICT DO NOTHING: ask for the row.
            return conn.execute(query.returning(LeaseRecord.name)).first() is not None
        # Only if the row is still as read: of two takers, the second finds it changed.
        result = conn.execute(update(LeaseRecord).where(LeaseRecord.name == name, LeaseRecord.holder == seen.holder,
                                                        LeaseRecord.until == seen.until)
                              .values(acquired_at=now, **values))
        return result.rowcount == 1


def take_over(store: Store, name: str, from_holder: str, holder: Holder, now: float, ttl: float) -> bool:
    """Move a lease held by ``from_holder`` (a starter that took it on this process's behalf) to
    ``holder``; False if ``from_holder`` no longer holds it."""
    with store.engine.begin() as conn:
        result = conn.execute(update(LeaseRecord).where(LeaseRecord.name == name, LeaseRecord.holder == from_holder)
                              .values(holder=holder.name, host=holder.host, pid=holder.pid, until=now + ttl,
                                      renewed_at=now))
        return result.rowcount == 1


def renew(store: Store, name: str, holder: Holder, now: float, ttl: float) -> bool:
    """Push the lease's end to ``now + ttl``; False if ``holder`` lost it (it ran out and was taken)."""
    with store.engine.begin() as conn:
        result = conn.execute(update(LeaseRecord).where(LeaseRecord.name == name, LeaseRecord.holder == holder.name)
                              .values(until=now + ttl, renewed_at=now))
        return result.rowcount == 1


def release(store: Store, name: str, holder: Holder) -> None:
    """Give the lease up (only if ``holder`` still holds it)."""
    with store.engine.begin() as conn:
        conn.execute(delete(LeaseRecord).where(LeaseRecord.name == name, LeaseRecord.holder == holder.name))
