"""Delivery state kept in the store, shared by every relay on it (every process, every replica).

Three kinds of rows in ``delivery_state`` decide whether one message of a (destination, group) may
go now: the destination's token bucket (Slack's pace), the user's bucket (their hourly cap) and the
group's last send (one message per group interval). A decision reads and writes all three in one
short transaction under the database's own lock:

* SQLite: ``BEGIN IMMEDIATE``, the database's write lock, on an AUTOCOMMIT connection (pysqlite
  would otherwise open the transaction lazily, at the first write, after our reads);
* PostgreSQL: ``INSERT ... ON CONFLICT DO NOTHING`` so that the rows exist, then
  ``SELECT ... ORDER BY key FOR UPDATE`` (always in key order: two deciders never deadlock).

So two processes never both send "the first alert" of a group, and the sum of all senders keeps
each destination's pace and each user's cap. The arithmetic is pure (alerts/pipeline/ratelimit.py).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection

from alerts.pipeline.ratelimit import TokenBucket, bucket_for, decide, user_bucket
from alerts.store.db import Store, sqlite_write_transaction
from alerts.store.models import DeliveryStateRecord as Row


def destination_key(destination: str) -> str:
    return f"dest:{destination}"


def user_key(user: str) -> str:
    return f"user:{user}"


def group_key(destination: str, group: str) -> str:
    return f"group:{destination}|{group}"


@dataclass(frozen=True)
class Target:
    """What one message is sent to: the destination (its key and kind), its user and the group."""

    destination: str
    kind: str  # slack | email: which pace
    user: str
    group: str

    @property
    def keys(self) -> tuple[str, str, str]:
        return destination_key(self.destination), user_key(self.user), group_key(self.destination, self.group)


@dataclass(frozen=True)
class Grant:
    """Leave to send one message now: what was taken, so that a failed send can give it back."""

    target: Target
    at: float  # the group's new last send
    previous: Optional[float]  # the group's last send before this one


@dataclass(frozen=True)
class Later:
    """Not now: ask again at ``until``. ``group_only``: only this group must wait (its interval);
    otherwise the destination or its user is out of tokens, and every group of it waits."""

    until: float
    group_only: bool


@contextmanager
def _locked(store: Store) -> Iterator[Connection]:
    """One short write transaction in which what is read stays ours until the commit."""
    if not store.is_sqlite:
        with store.engine.begin() as conn:
            # This state is worth no fsync wait on the path of an alert: a database crash can lose
            # its last decisions at worst (a group sent twice), never an alert (the outbox's own
            # commits keep their durability).
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            yield conn
        return
    with sqlite_write_transaction(store.engine) as conn:  # waits up to the busy timeout for other writers
        yield conn


_T = Row.__table__
_COLUMNS = (_T.c.key, _T.c.tokens, _T.c.updated_at, _T.c.last_sent_at)
_READ = select(*_COLUMNS).where(_T.c.key.in_(bindparam("keys", expanding=True))).order_by(_T.c.key)
_READ_LOCKED = _READ.with_for_update()


@dataclass(frozen=True)
class _Fresh:
    """A key with no row yet: a full bucket, a group never sent to (the model's defaults)."""

    key: str
    tokens: Optional[float] = None
    updated_at: float = 0.0
    last_sent_at: Optional[float] = None


def _load(store: Store, conn: Connection, keys: tuple[str, ...]) -> dict:
    """The rows of ``keys``, locked until the transaction ends, by key.

    SQLite: the whole database is ours (``BEGIN IMMEDIATE``), so a missing row is read as its
    defaults and written by :func:`_save` (an upsert), two statements fewer on the first alert of
    each group. PostgreSQL locks rows, not the database: the missing ones are created first, so that
    ``FOR UPDATE`` has a row to lock (two deciders on a new group then take turns)."""
    if store.is_sqlite:
        rows = {row.key: row for row in conn.execute(_READ, {"keys": list(keys)}).all()}
        return {key: rows.get(key) or _Fresh(key) for key in keys}
    rows = {row.key: row for row in conn.execute(_READ_LOCKED, {"keys": list(keys)}).all()}
    if len(rows) < len(keys):  # first use of a destination, user or group
        missing = sorted(set(keys) - set(rows))
        conn.execute(store._insert_ignoring_duplicates(Row).values([{"key": key} for key in missing]))
        rows = {row.key: row for row in conn.execute(_READ_LOCKED, {"keys": list(keys)}).all()}
    return rows


def _bucket(row, template: TokenBucket) -> TokenBucket:
    return TokenBucket(rate=template.rate, burst=template.burst, tokens=row.tokens, updated=row.updated_at)


_SAVE = (update(Row).where(Row.key == bindparam("k"))
         .values(tokens=bindparam("t"), updated_at=bindparam("u"), last_sent_at=bindparam("s")))
_UPSERTS: dict = {}  # by dialect name: INSERT ... ON CONFLICT (key) DO UPDATE, built once


def _upsert(store: Store):
    statement = _UPSERTS.get(store.is_sqlite)
    if statement is None:
        if store.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        new = dialect_insert(_T).values(key=bindparam("k"), tokens=bindparam("t"), updated_at=bindparam("u"),
                                        last_sent_at=bindparam("s"))
        statement = _UPSERTS[store.is_sqlite] = new.on_conflict_do_update(
            index_elements=[_T.c.key], set_={"tokens": new.excluded.tokens, "updated_at": new.excluded.updated_at,
                                             "last_sent_at": new.excluded.last_sent_at})
    return statement


def _save(store: Store, conn: Connection, buckets: dict[str, TokenBucket], group: str,
          last_sent: Optional[float]) -> None:
    """Write the buckets and the group's last send, in one statement (an upsert on SQLite, whose
    rows may not exist yet: :func:`_load`)."""
    statement = _upsert(store) if store.is_sqlite else _SAVE
    conn.execute(statement, [{"k": key, "t": b.tokens, "u": b.updated, "s": None} for key, b in buckets.items()]
                 + [{"k": group, "t": None, "u": 0.0, "s": last_sent}])


def take(store: Store, target: Target, now: float, interval: float) -> Grant | Later:
    """May one message go to ``target`` at ``now``? A :class:`Grant` (its tokens taken, the group
    marked sent at ``now``), or :class:`Later`."""
    dest_key, user_key_, group_key_ = target.keys
    with _locked(store) as conn:
        rows = _load(store, conn, target.keys)
        dest, user = _bucket(rows[dest_key], bucket_for(target.kind)), _bucket(rows[user_key_], user_bucket())
        previous = rows[group_key_].last_sent_at
        later = decide(dest, user, previous, now, interval)
        if later is not None:
            return Later(later, group_only=previous is not None and now - previous < interval)
        _save(store, conn, {dest_key: dest, user_key_: user}, group_key_, now)
    return Grant(target, now, previous)


def give_back(store: Store, grant: Grant, now: float, retry_after: Optional[float] = None) -> None:
    """A send that ``grant`` allowed failed: give the tokens back and the group its previous last
    send, unless another relay moved it since (conditional). A ``retry_after`` (Slack's 429) pauses
    the destination for every relay until then instead of giving its token back."""
    dest_key, user_key_, group_key_ = grant.target.keys
    with _locked(store) as conn:
        rows = _load(store, conn, grant.target.keys)
        dest, user = _bucket(rows[dest_key], bucket_for(grant.target.kind)), _bucket(rows[user_key_], user_bucket())
        if retry_after is not None:
            dest.pause_until(now + retry_after)
        else:
            dest.give_back(now)
        user.give_back(now)
        last_sent = rows[group_key_].last_sent_at
        _save(store, conn, {dest_key: dest, user_key_: user}, group_key_, grant.previous if last_sent == grant.at else last_sent)


def prune(store: Store, before: float) -> int:
    """Forget groups whose last message went before ``before`` (they may send at once anyway)."""
    with store.engine.begin() as conn:
        result = conn.execute(delete(Row).where(Row.key.like("group:%"), Row.last_sent_at < before))
    return result.rowcount or 0


def snapshot(store: Store) -> dict[str, Row]:
    """Every state row by key (for ``alerts deliveries`` and tests)."""
    with store.engine.connect() as conn:
        return {row.key: Row.model_validate(row._mapping) for row in conn.execute(select(Row)).all()}
