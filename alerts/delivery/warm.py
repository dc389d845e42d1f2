"""Start what delivery needs at ``init()``, so that the first alert of a process does not pay for it.

Measured (benchmarks/README.md): the first alert of a fresh process spent ~20 ms in its commit and
~40 ms in the relay's first pass before its message left, compiling SQL statements, running the
relay's maintenance and building the Slack client, all on the way of that one alert. Here they are
done as soon as ``init()`` knows that channels are configured, on a thread that ``init()`` waits for
(at most ``WARM_UP_WAIT``): done in the background instead, they competed for the GIL and the store
with an alert raised right after ``init()`` and made it slower, not faster.

* the writer's INSERTs of an alert and its outbox rows are compiled into the engine's statement cache
  inside a read-only transaction: the INSERTs are refused by the database, so nothing is written and
  no lock is taken (another process's commit never waits for this);
* so are the outbox claim's UPDATE and SELECT, which the relay's first pass (no rows due yet) does
  not reach;
* the relay builds the senders of the run owner's destinations (for https, the TLS context: ~100 ms
  of loading CA certificates) and runs its first pass (maintenance, then a claim of whatever is
  due, which sends what earlier runs left in the outbox); the silences are read once and urllib's
  first opener is built.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional

from sqlalchemy import insert

from alerts import clock as _clock
from alerts.pipeline import silence
from alerts.store.db import Store
from alerts.store.models import AlertRecord, DeliveryRecord, alert_row

logger = logging.getLogger("alerts")

# How long init() waits for the preparation (seconds): ~60 ms when the store answers; a store locked
# by another process (the relay's first pass writes) must not hold init() back for its busy timeout.
WARM_UP_WAIT = 0.5

_prepared: set = set()  # store URLs whose statements this process has compiled
_lock = threading.Lock()


def _sample_rows() -> list:
    """One row of each table with the columns the writer inserts (the statement cache is keyed by
    the columns, and by one row against many: the first alert is one row)."""
    alert = alert_row(uid="warm-up", run_id="warm-up", created_at=0.0, source="alert", title="", text="",
                      level="INFO", outcome="notified", reason=None, wait_duration=60.0, step=0)
    delivery = {"alert_uid": "warm-up", "destination": "warm-up", "user": "warm-up", "group_key": "warm-up",
                "level": "INFO", "payload": "{}", "state": "pending", "attempts": 0, "created_at": 0.0,
                "next_attempt_at": 0.0}
    return [(insert(AlertRecord), [alert]), (insert(DeliveryRecord), [delivery])] + _claim_statements()


def _claim_statements() -> list:
    """The UPDATE and SELECT of ``outbox.claim`` past its first query (compiled only once rows are
    due, so the relay's first pass at init() does not compile them). Kept in step with
    ``outbox.claim`` by hand: a statement that no longer matches only stops saving its compile time."""
    from sqlalchemy import and_, select, update

    from alerts.delivery.outbox import LEASE_SECONDS, _due

    until = LEASE_SECONDS
    # As a relay claims: only rows for the destinations it can judge.
    due = and_(_due(0.0), DeliveryRecord.destination.in_(["warm-up"]))
    leased = update(DeliveryRecord).where(DeliveryRecord.id.in_([0]), due).values(
        lease_until=until, lease_owner="warm-up", attempts=DeliveryRecord.attempts + 1)
    rows = (select(DeliveryRecord).where(DeliveryRecord.id.in_([0]), DeliveryRecord.lease_owner == "warm-up",
                                         DeliveryRecord.lease_until == until).order_by(DeliveryRecord.id))
    return [(leased, None), (rows, None)]


def prepare_store(store: Store) -> bool:
    """Compile the INSERTs of an alert and its outbox rows (as ``Store.write_batch`` issues them)
    and the outbox claim's statements into the engine's cache, without writing: the transaction is
    read-only, so each INSERT or UPDATE is compiled, then refused by the database, then rolled
    back. Once per store and process: True if this call did it."""
    with _lock:
        if store.url in _prepared:
            return False
        _prepared.add(store.url)
    with store.engine.connect() as conn:
        read_only = "PRAGMA query_only=ON" if store.is_sqlite else "SET TRANSACTION READ ONLY"
        try:
            for statement, rows in _sample_rows():
                conn.exec_driver_sql(read_only)
                try:
                    result = conn.execute(statement) if rows is None else conn.execute(statement, rows)
                    if result.returns_rows:
                        result.all()
                except Exception:
                    pass  # refused as read-only, as intended: the compiled statement is cached
                conn.rollback()
        finally:
            if store.is_sqlite:  # a pooled connection: writable again before it goes back
                conn.exec_driver_sql("PRAGMA query_only=OFF")
                conn.commit()
    return True


def start(store: Store, relay: Optional[Any], user: str) -> threading.Thread:
    """Prepare delivery for ``user``'s alerts on a daemon thread; join it with a bound."""
    thread = threading.Thread(target=_prepare, args=(store, relay, user), name="alerts-warm-up", daemon=True)
    thread.start()
    return thread


def _prepare(store: Store, relay: Optional[Any], user: str) -> None:
    from alerts.channels.slack import warm_http  # here: Slack's clients load only where channels are set up

    try:
        first = prepare_store(store)
        if relay is not None:
            relay.warm([user])
            if first:  # the relay's first pass, now: later runs of this process find it done
                relay.run_once()
                silence.active(store, _clock.now())  # read on the way of every claimed row
                warm_http()
    except Exception:  # only ever a missed head start: the first alert then prepares it itself
        logger.debug("alerts: preparing delivery failed", exc_info=True)


def forget() -> None:
    """Forget which stores were prepared (tests)."""
    with _lock:
        _prepared.clear()
