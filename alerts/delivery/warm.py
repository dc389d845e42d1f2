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
* so are the outbox claim's UPDATE ... RETURNING, the riders' and the UPDATE that marks rows sent,
  which the relay's first pass (no rows due yet) does not reach;
* the relay builds the senders of the run owner's destinations (for https, the TLS context: ~100 ms
  of loading CA certificates) and runs its first pass (maintenance, then a claim of whatever is
  due, which sends what earlier runs left in the outbox); the silences are read once and urllib's
  first opener is built; then the webhooks' connections are opened (kept open between messages:
  alerts/channels/keepalive.py), so that the first message pays no TCP or TLS handshake.
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


def _sample_rows(store: Store) -> list:
    """One row of each table with the columns the writer inserts (the statement cache is keyed by
    the columns, and by one row against many: the first alert is one row)."""
    alert = alert_row(uid="warm-up", run_id="warm-up", created_at=0.0, source="alert", title="", text="",
                      level="INFO", outcome="notified", reason=None, wait_duration=60.0, step=0)
    delivery = {"alert_uid": "warm-up", "destination": "warm-up", "user": "warm-up", "group_key": "warm-up",
                "level": "INFO", "payload": "{}", "state": "pending", "attempts": 0, "created_at": 0.0,
                "next_attempt_at": 0.0}
    return [(insert(AlertRecord), [alert]), (insert(DeliveryRecord), [delivery])] + _claim_statements(store)


def _claim_statements(store: Store) -> list:
    """The statements of a woken relay's pass past what its first pass at init() reaches (nothing is
    due then): the claim, the group's state read and written, the riders' claim and the UPDATE
    that marks a message sent, with the parameters a pass gives them (the engine's cache knows a
    statement by its shape and its parameters' names)."""
    from alerts.delivery import outbox, state

    claim = {"now": 0.0, "limit": outbox.CLAIM_LIMIT, "until": 0.0, "owner": "warm-up"}
    sent = {"ids": [0], "owner": "warm-up", "new_state": "sent", "new_sent_at": 0.0, "new_carried_by": None,
            "new_message_id": None, "new_last_error": None}
    claim = {**claim, "destinations": ["warm-up"], "dest": "warm-up", "group": "warm-up", "ids": [0]}
    claims = [outbox._CLAIM[True], outbox._CLAIM_RIDERS]
    if store.engine.dialect.update_returning:
        statements = [(c.returning, claim) for c in claims]
    else:  # a SQLite before 3.35: the claim's transaction
        statements = [(statement, claim) for c in claims for statement in (c.lease, c.read)]
    return statements + [
        (state._READ if store.is_sqlite else state._READ_LOCKED, {"keys": ["warm-up"] * 3}),
        (state._upsert(store) if store.is_sqlite else state._SAVE, [{"k": "warm-up", "t": None, "u": 0.0, "s": None}] * 3),
        (outbox._finishing(("state", "sent_at", "carried_by", "message_id", "last_error")), sent)]


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
            for statement, rows in _sample_rows(store):
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
            relay.connect([user])  # last: the pass above may have had leftovers to send
    except Exception:  # only ever a missed head start: the first alert then prepares it itself
        logger.debug("alerts: preparing delivery failed", exc_info=True)


def forget() -> None:
    """Forget which stores were prepared (tests)."""
    with _lock:
        _prepared.clear()
