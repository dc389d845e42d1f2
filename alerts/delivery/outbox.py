"""The outbox's queries: claim due rows with a lease, record each outcome on the row.

A claim is one UPDATE whose WHERE re-checks that the row is still pending, due and not leased, so two
relays (two processes over one SQLite file, or server replicas over PostgreSQL) never both take a row.
A relay renews the leases of a pass while it sends (:func:`renew`); one that dies mid-send leaves its
lease to expire; the row is then claimed again, which can send it twice at most once (counted in
``attempts``). Every outcome is written in the step that learns it. A relay claims only rows of the
destinations it can send to, and gives back untouched (:func:`release`) what it finds it cannot.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Optional

from sqlalchemy import and_, bindparam, delete, func, or_, select, update

from alerts.store.db import Store
from alerts.store.models import DeliveryRecord

LEASE_SECONDS = 60.0
MAX_AGE_SECONDS = 24 * 3600.0  # a row still unsent after this goes dead ("expired")
BACKOFF_BASE = 2.0
BACKOFF_MAX = 300.0


def backoff(attempts: int, rng: random.Random = random.Random()) -> float:
    """Seconds before the next try: exponential (2, 4, 8, ... capped at 5 min) with full jitter
    over its upper half, so that many rows failing together do not retry together."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE ** max(1, attempts))
    return ceiling / 2 + rng.random() * ceiling / 2


def _due(now: float):
    return and_(DeliveryRecord.state == "pending", DeliveryRecord.next_attempt_at <= now,
                or_(DeliveryRecord.lease_until.is_(None), DeliveryRecord.lease_until < now))


# Rows claimed in one pass: a storm's rows of one group should ride in one message, not in one per
# claim (each message counts against the destination's pace and the user's hourly cap).
CLAIM_LIMIT = 10_000

# The claim's statements, built once on the table's Core columns (not the ORM class's attributes) and
# with bound parameters: building a statement costs about as much as running it, and one built once
# is compiled once (the engine's cache), then only executed. They are on the path of every alert.
_T = DeliveryRecord.__table__
_C = _T.c
_FREE = or_(_C.lease_until.is_(None), _C.lease_until < bindparam("now"))
_DUE = and_(_C.state == "pending", _C.next_attempt_at <= bindparam("now"), _FREE)
_FOR = _C.destination.in_(bindparam("destinations", expanding=True))
_WAITING = and_(_C.state == "pending", _C.next_attempt_at > bindparam("now"), _C.destination == bindparam("dest"),
                _C.group_key == bindparam("group"), _FREE)
_TAKE = {"lease_until": bindparam("until"), "lease_owner": bindparam("owner"), "attempts": _C.attempts + 1}


@dataclass(frozen=True)
class _Claiming:
    """A claim's statements. ``returning``: one ``UPDATE ... WHERE id IN (the first ids meeting the
    condition) AND <the condition> RETURNING *``: the rows are chosen, leased and read back in one
    atomic write (SQLite's write lock; PostgreSQL's row locks, under which the WHERE is checked
    again, so of two relays racing for a row one takes it), instead of a transaction of three
    statements. The other three are that transaction, for a SQLite older than 3.35 (no RETURNING)."""

    returning: Any
    first: Any  # SELECT the ids
    lease: Any  # UPDATE those that still meet the condition
    read: Any  # SELECT what this lease took


def _claiming(condition) -> _Claiming:
    first = select(_C.id).where(condition).order_by(_C.id).limit(bindparam("limit"))
    lease = update(_T).where(_C.id.in_(first.scalar_subquery()), condition).values(**_TAKE)
    return _Claiming(
        returning=lease.returning(*_C), first=first,
        lease=update(_T).where(_C.id.in_(bindparam("ids", expanding=True)), condition).values(**_TAKE),
        read=select(_T).where(_C.id.in_(bindparam("ids", expanding=True)), _C.lease_owner == bindparam("owner"),
                              _C.lease_until == bindparam("until")))


_PROBE = {False: select(_C.id).where(_DUE).limit(1), True: select(_C.id).where(_DUE, _FOR).limit(1)}
_CLAIM = {False: _claiming(_DUE), True: _claiming(and_(_DUE, _FOR))}
_CLAIM_RIDERS = _claiming(_WAITING)


def _records(rows) -> list[DeliveryRecord]:
    """Claimed rows as records, oldest first (RETURNING gives them in no set order)."""
    return sorted((DeliveryRecord.model_validate(row._mapping) for row in rows), key=lambda r: r.id)


def claim(store: Store, owner: str, now: float, limit: int = CLAIM_LIMIT, lease: Optional[float] = None,
          destinations: Optional[Collection[str]] = None, probe: bool = True) -> list[DeliveryRecord]:
    """Lease up to ``limit`` due rows to ``owner`` until ``now + lease``; return them, oldest first.

    ``destinations``: claim only rows for these (the ones this relay can judge); others are left
    alone for a relay that has their channel. ``probe``: look first, without the write lock,
    whether anything is due (most passes of an idle relay find nothing); a relay woken by a commit
    of outbox rows knows there is, and goes straight to the claim.
    """
    lease = LEASE_SECONDS if lease is None else lease
    params = {"now": now, "limit": limit, "until": now + lease, "owner": owner}
    if destinations is not None:
        if not destinations:
            return []
        params["destinations"] = sorted(destinations)
    filtered = destinations is not None
    if probe:
        with store.engine.connect() as conn:  # nothing due: no write lock taken
            if conn.execute(_PROBE[filtered], params).first() is None:
                return []
    return _lease(store, _CLAIM[filtered], params)


def _lease(store: Store, claiming: _Claiming, params: dict) -> list[DeliveryRecord]:
    """Lease what ``claiming`` selects (:func:`_claiming`) in one atomic write; the rows it leased."""
    if store.engine.dialect.update_returning:
        # AUTOCOMMIT: the statement is its own transaction (SQLite takes its write lock at the
        # UPDATE's start, before it reads), with no BEGIN and COMMIT round trips around it.
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            return _records(conn.execute(claiming.returning, params).all())
    with store.write_transaction() as conn:  # reads, then writes: the write lock first
        ids = list(conn.execute(claiming.first, params).scalars())
        if not ids:
            return []
        conn.execute(claiming.lease, {**params, "ids": ids})
        return _records(conn.execute(claiming.read, {**params, "ids": ids}).all())


def claim_riders(store: Store, owner: str, destination: str, group_key: str, now: float,
                 lease: Optional[float] = None, limit: int = CLAIM_LIMIT) -> list[DeliveryRecord]:
    """Lease the rows of one (destination, group) that are pending but not due yet (backing off after
    an outage, or waiting for their group), for a message of that group that is about to go: they
    ride along, instead of making a message of their own one group interval later."""
    lease = LEASE_SECONDS if lease is None else lease
    return _lease(store, _CLAIM_RIDERS, {"now": now, "limit": limit, "until": now + lease, "owner": owner,
                                         "dest": destination, "group": group_key})


def renew(store: Store, owner: str, until: float) -> int:
    """Extend the leases ``owner`` still holds to ``until`` (a pass whose sends are slow keeps its
    rows: no other relay sends them again meanwhile). Returns how many rows."""
    with store.engine.begin() as conn:
        result = conn.execute(update(DeliveryRecord)
                              .where(DeliveryRecord.lease_owner == owner, DeliveryRecord.state == "pending",
                                     DeliveryRecord.lease_until < until)
                              .values(lease_until=until))
    return result.rowcount or 0


def owner_name(host: str, pid: int, tag: str) -> str:
    """A lease owner: ``host:pid:tag``, so that a relay can tell a dead process's leases on its host."""
    return f"{host}:{pid}:{tag}"


def release_dead_leases(store: Store, host: str, now: float, is_alive) -> int:
    """Free the leases held by processes of ``host`` that no longer run (killed mid-send): their rows
    are due again now rather than when the lease would have run out. Returns how many rows."""
    with store.engine.connect() as conn:
        owners = list(conn.execute(select(DeliveryRecord.lease_owner).distinct()
                                   .where(DeliveryRecord.lease_until >= now,
                                          DeliveryRecord.lease_owner.like(f"{host}:%"))).scalars())
    dead = []
    for owner in owners:
        try:
            pid = int(owner.split(":")[1])
        except (IndexError, ValueError):
            continue
        if not is_alive(pid):
            dead.append(owner)
    if not dead:
        return 0
    with store.engine.begin() as conn:
        result = conn.execute(update(DeliveryRecord).where(DeliveryRecord.lease_owner.in_(dead),
                                                           DeliveryRecord.state == "pending")
                              .values(lease_until=None, lease_owner=None))
    return result.rowcount or 0


_FINISHING: dict = {}  # the UPDATE of each set of columns _finish writes, built once (see _claiming)


def _finishing(columns: tuple):
    statement = _FINISHING.get(columns)
    if statement is None:
        statement = _FINISHING[columns] = (
            update(_T).where(_C.id.in_(bindparam("ids", expanding=True)), _C.lease_owner == bindparam("owner"))
            .values(lease_until=None, lease_owner=None, **{c: bindparam(f"new_{c}") for c in columns}))
    return statement


def _finish(store: Store, ids: Iterable[int], owner: str, **values) -> None:
    ids = list(ids)
    if not ids:
        return
    params = {"ids": ids, "owner": owner, **{f"new_{c}": v for c, v in values.items()}}
    # One statement: its own transaction (no BEGIN and COMMIT around it).
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(_finishing(tuple(values)), params)


def mark_sent(store: Store, ids: list[int], owner: str, now: float, message_id: Optional[str]) -> None:
    """Sent, all in one message: the first row carried it."""
    _finish(store, ids, owner, state="sent", sent_at=now, carried_by=ids[0] if len(ids) > 1 else None,
            message_id=message_id, last_error=None)


def mark_retry(store: Store, ids: list[int], owner: str, next_attempt_at: float, error: str) -> None:
    _finish(store, ids, owner, state="pending", next_attempt_at=next_attempt_at, last_error=error)


def mark_dead(store: Store, ids: list[int], owner: str, error: str) -> None:
    _finish(store, ids, owner, state="dead", last_error=error)


def mark_suppressed(store: Store, ids: list[int], owner: str, reason: str) -> None:
    """Not sent on purpose (a silence): recorded with the reason, never retried."""
    _finish(store, ids, owner, state="suppressed", last_error=reason)


def defer(store: Store, ids: list[int], owner: str, until: Optional[float] = None) -> None:
    """Give rows back without counting a try (group interval, rate limit): due again at ``until``
    (``None``: when they were due already: a relay that cannot judge them leaves them to another)."""
    ids = list(ids)
    if not ids:
        return
    values = {"lease_until": None, "lease_owner": None, "attempts": DeliveryRecord.attempts - 1}
    if until is not None:
        values["next_attempt_at"] = until
    with store.engine.begin() as conn:
        conn.execute(update(DeliveryRecord).where(DeliveryRecord.id.in_(ids), DeliveryRecord.lease_owner == owner)
                     .values(**values))


def release(store: Store, ids: list[int], owner: str) -> None:
    """Give rows back untouched (not a try, due as before), for a relay that can judge them."""
    defer(store, ids, owner, None)


def expire(store: Store, now: float, max_age: float = MAX_AGE_SECONDS) -> int:
    """Rows still pending after ``max_age`` go dead; returns how many."""
    with store.engine.begin() as conn:
        result = conn.execute(update(DeliveryRecord)
                              .where(DeliveryRecord.state == "pending", DeliveryRecord.created_at < now - max_age,
                                     or_(DeliveryRecord.lease_until.is_(None), DeliveryRecord.lease_until < now))
                              .values(state="dead", last_error=f"expired: not delivered within {max_age:.0f}s",
                                      lease_until=None, lease_owner=None))
    return result.rowcount or 0


def requeue(store: Store, delivery_id: int, now: float) -> bool:
    """Put a dead row back in the queue, due now (``alerts deliveries retry ID``)."""
    with store.engine.begin() as conn:
        result = conn.execute(update(DeliveryRecord)
                              .where(DeliveryRecord.id == delivery_id, DeliveryRecord.state == "dead")
                              .values(state="pending", next_attempt_at=now, created_at=now, lease_until=None,
                                      lease_owner=None))
    return bool(result.rowcount)


def listing(store: Store, state: Optional[str] = None, limit: int = 200) -> list[DeliveryRecord]:
    """Rows, newest first, optionally of one state."""
    query = select(DeliveryRecord).order_by(DeliveryRecord.id.desc()).limit(limit)
    if state:
        query = query.where(DeliveryRecord.state == state)
    with store.engine.connect() as conn:
        return [DeliveryRecord.model_validate(row._mapping) for row in conn.execute(query).all()]


def pending_count(store: Store, due_before: Optional[float] = None,
                  destinations: Optional[Collection[str]] = None) -> int:
    """Rows still pending (only those due before ``due_before``, and for ``destinations``, if given)."""
    query = select(func.count()).select_from(DeliveryRecord).where(DeliveryRecord.state == "pending")
    if due_before is not None:
        query = query.where(DeliveryRecord.next_attempt_at <= due_before)
    if destinations is not None:
        if not destinations:
            return 0
        query = query.where(DeliveryRecord.destination.in_(sorted(destinations)))
    with store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def pending_by_destination(store: Store, excluding: Collection[str]) -> dict[str, int]:
    """Pending rows per destination, for destinations not in ``excluding``."""
    query = (select(DeliveryRecord.destination, func.count()).where(DeliveryRecord.state == "pending")
             .group_by(DeliveryRecord.destination))
    if excluding:
        query = query.where(DeliveryRecord.destination.not_in(sorted(excluding)))
    with store.engine.connect() as conn:
        return {destination: int(n) for destination, n in conn.execute(query).all()}


INCIDENT_LOOKBACK = 1_000  # sent rows of a group read to count its incident, newest first: bounds the
# cost each follow-up adds to a pass (decoding 10,000 payloads per message slowed a 100k storm)


def incident_so_far(store: Store, destination: str, group_key: str, now: float) -> list:
    """The alerts of a group's current incident that earlier messages to ``destination`` carried
    (Notifications, oldest first): what a follow-up message counts besides its own alerts."""
    import json

    from alerts.channels.base import Notification
    from alerts.pipeline import incident

    query = (select(DeliveryRecord.sent_at, DeliveryRecord.payload)
             .where(DeliveryRecord.destination == destination, DeliveryRecord.group_key == group_key,
                    DeliveryRecord.state == "sent", DeliveryRecord.sent_at.is_not(None))
             .order_by(DeliveryRecord.sent_at.desc()).limit(INCIDENT_LOOKBACK))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return incident.current([(sent_at, Notification(**json.loads(payload))) for sent_at, payload in rows], now)


PRUNE_BATCH = 5_000  # rows deleted per transaction: a big backlog never holds the write lock for long


def prune(store: Store, now: float, retention: float) -> int:
    """Delete sent, suppressed and dead rows created more than ``retention`` seconds before ``now``
    (``ALERTS_RETENTION``), in batches; a pending row is never deleted. Returns how many went."""
    old = and_(DeliveryRecord.state.in_(("sent", "suppressed", "dead")), DeliveryRecord.created_at < now - retention)
    total = 0
    while True:
        with store.engine.begin() as conn:
            ids = list(conn.execute(select(DeliveryRecord.id).where(old).limit(PRUNE_BATCH)).scalars())
            if ids:
                conn.execute(delete(DeliveryRecord).where(DeliveryRecord.id.in_(ids), old))
        total += len(ids)
        if len(ids) < PRUNE_BATCH:
            return total
