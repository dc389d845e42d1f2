"""The store: one SQLAlchemy engine over SQLite (WAL, several processes at once) or PostgreSQL.

Writes from the run logger arrive in batches (:meth:`Store.write_batch`), one transaction each, so
that a background thread can commit thousands of history rows at a time. Reads build plain records.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

from sqlalchemy import event, func, insert, text, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, create_engine, select

from alerts.store import jsoncodec, migrate
from alerts.store.models import AlertRecord, DeliveryRecord, HistoryChunk, MediaRecord, RunRecord

logger = logging.getLogger("alerts")

# How long a SQLite writer waits for another process's transaction before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # First, so that every statement below waits for other processes' locks (pysqlite's timeout= sets
    # the same; said again here so that this hook does not depend on how the engine was made).
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # WAL lets readers (``alerts runs``) and several writer processes (DDP ranks) share the file;
    # synchronous=NORMAL in WAL mode survives a killed process (the WAL lives in the OS cache) and
    # only risks the last commits on power loss, for a fraction of the fsyncs.
    _enter_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _enter_wal(cursor) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the write lock.

    On a file not yet in WAL mode (a brand-new store) the pragma reads the header and then writes it:
    a read-then-write inside SQLite that, when another connection holds the write lock (another
    process switching the same new file to WAL, or creating its tables), fails at once with
    SQLITE_BUSY instead of calling the busy handler (the read lock it holds could deadlock the
    other writer). The pragma cannot run inside ``BEGIN IMMEDIATE`` either, so it is retried here,
    with the backoff SQLite's own busy handler uses, within the same busy timeout. Once the file is
    in WAL mode the pragma only reads, and succeeds the first time.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    attempt = 0
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            if not _is_busy(exc) or left <= 0:
                raise
            if attempt == 0:
                logger.debug("another connection holds the write lock of a store not yet in WAL mode: waiting")
            time.sleep(min(_WAL_RETRY_DELAYS_S[min(attempt, len(_WAL_RETRY_DELAYS_S) - 1)], left))
            attempt += 1


# SQLite's busy handler's sleeps (sqliteDefaultBusyCallback), first to last, then the last again.
_WAL_RETRY_DELAYS_S = (0.001, 0.002, 0.005, 0.010, 0.015, 0.020, 0.025, 0.025, 0.025, 0.050, 0.050, 0.100)


_SQLITE_BUSY = 5  # the primary result code (sqlite3.SQLITE_BUSY exists from Python 3.11 only)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite said SQLITE_BUSY (any extended code of it): another connection's lock."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF == _SQLITE_BUSY
    return "database is locked" in str(exc)


# How long fork() waits for this process's other threads to give back their SQLite connections.
FORK_WAIT_S = 5.0


class _ForkGate:
    """Keeps ``fork()`` from copying this process while another of its threads uses a SQLite
    connection.

    SQLite keeps its file-lock bookkeeping in process memory, and a forked child inherits a copy:
    forked mid-transaction, the child believes the database's write lock taken by a connection
    that no thread of the child will ever release, and each of its own writes waits the busy
    timeout and fails (``init()`` in a multiprocessing child raised ``StoreUnavailable``). So a
    connection counts from its checkout from the pool to its return, and a fork waits (at most
    ``FORK_WAIT_S``) until the other threads hold none, while new checkouts wait for the fork.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._held: dict[int, int] = {}  # id(connection record) -> the thread that checked it out
        self._forking = False

    def checkout(self, _dbapi_connection, record, _proxy) -> None:
        me = threading.get_ident()
        with self._cond:
            # A thread that holds a connection already takes another at once: the fork waits for it.
            while self._forking and me not in self._held.values():
                self._cond.wait()
            self._held[id(record)] = me

    def checkin(self, _dbapi_connection, record) -> None:
        with self._cond:
            if self._held.pop(id(record), None) is not None:
                self._cond.notify_all()

    def before_fork(self) -> None:
        me = threading.get_ident()
        with self._cond:
            self._forking = True
            self._cond.wait_for(lambda: all(owner == me for owner in self._held.values()), FORK_WAIT_S)

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        # The child has one thread: the connections the parent's other threads held are not its own.
        self._cond = threading.Condition(threading.Lock())
        self._held = {}
        self._forking = False


_fork_gate = _ForkGate()


# The PostgreSQL advisory lock that schema changes hold (one key per database: "alerts" in ASCII).
SCHEMA_LOCK_KEY = 0x616C65727473


@contextmanager
def schema_lock(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction that holds the database's schema lock until it commits.

    Whatever creates or changes tables runs inside it (``create_all`` today, migrations later), so
    that processes starting at once on an empty database take turns instead of colliding.
    PostgreSQL: a transaction-level advisory lock, released by the commit or rollback. SQLite:
    ``BEGIN IMMEDIATE``, the database's write lock (waited for up to the busy timeout).
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            yield conn
        return
    # The tables' check and their creation share the one write-locked transaction.
    with sqlite_write_transaction(engine) as conn:
        yield conn


@contextmanager
def sqlite_write_transaction(engine: Engine) -> Iterator[Connection]:
    """A SQLite transaction that holds the database's write lock from its first statement
    (``BEGIN IMMEDIATE``, waited for up to the busy timeout): what it reads stays as read until the
    commit. pysqlite opens transactions itself, lazily and never for DDL; in AUTOCOMMIT mode it leaves
    that to us."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.exec_driver_sql("ROLLBACK")
            raise
        conn.exec_driver_sql("COMMIT")


@dataclass
class Batch:
    """What the background writer commits in one transaction."""

    runs: list[dict] = field(default_factory=list)  # inserts of new runs
    history: list[dict] = field(default_factory=list)  # HistoryChunk columns
    media: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)
    deliveries: list[dict] = field(default_factory=list)  # outbox rows, in the alerts' transaction
    run_updates: dict[str, dict] = field(default_factory=dict)  # run id -> columns, latest wins

    def __bool__(self) -> bool:
        return bool(self.runs or self.history or self.media or self.alerts or self.deliveries or self.run_updates)

    def update_run(self, run_id: str, fields: dict) -> None:
        self.run_updates.setdefault(run_id, {}).update(fields)


class Store:
    """Tables and queries over one database URL."""

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = url  # may hold a password: log safe_url instead
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "checkout", _fork_gate.checkout)
            event.listen(self.engine, "checkin", _fork_gate.checkin)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        if migrate_schema:
            self._create_schema()

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def _create_schema(self) -> None:
        # At the head revision (every start but the first after an upgrade): one query, no lock, so
        # that a store another program holds a write lock on does not stall init() here. Otherwise the
        # migrations run, processes starting together on one database taking turns (alerts/store/migrate.py).
        if not migrate.is_current(self.engine):
            migrate.upgrade(self.engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- writes ---------------------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> None:
        """Commit a batch in one transaction: run inserts first, then rows, then run updates."""
        with self.engine.begin() as conn:
            if batch.runs:
                # A run row may already be there (a resumed run, a retried batch): keep the first.
                conn.execute(self._insert_ignoring_duplicates(RunRecord), batch.runs)
            if batch.history:
                conn.execute(insert(HistoryChunk), batch.history)
            if batch.media:
                conn.execute(insert(MediaRecord), batch.media)
            if batch.alerts:
                conn.execute(insert(AlertRecord), batch.alerts)
            if batch.deliveries:
                conn.execute(insert(DeliveryRecord), batch.deliveries)
            for run_id, fields in batch.run_updates.items():
                conn.execute(update(RunRecord).where(RunRecord.id == run_id).values(**fields))

    @contextmanager
    def write_transaction(self) -> Iterator[Connection]:
        """A transaction for a read-then-write that races other processes. On SQLite it takes the
        write lock first (``BEGIN IMMEDIATE``, waited for): in WAL mode a deferred transaction that
        reads and then writes fails at once with "database is locked" when another process wrote in
        between, without waiting for the busy timeout."""
        if self.is_sqlite:
            with sqlite_write_transaction(self.engine) as conn:
                yield conn
        else:
            with self.engine.begin() as conn:
                yield conn

    def create_run(self, row: dict) -> bool:
        """Insert a run row now; ``False`` (and nothing written) if a run with its id exists already,
        so that of two processes starting one id at once, exactly one creates it."""
        with self.write_transaction() as conn:
            query = self._insert_ignoring_duplicates(RunRecord).values(**row)
            if self.is_sqlite:  # RETURNING needs SQLite 3.35; rowcount is right there
                return conn.execute(query).rowcount == 1
            # psycopg reports rowcount -1 for an INSERT ... ON CONFLICT DO NOTHING: ask for the row.
            return conn.execute(query.returning(RunRecord.id)).first() is not None

    def claim_run(self, seen: RunRecord, fields: dict) -> bool:
        """Write ``fields`` on run ``seen.id`` only if its row is still as ``seen`` was read (same
        state, holder and heartbeat): a compare-and-set, so of two processes claiming a run at once
        exactly one wins, and a holder that wrote a heartbeat meanwhile keeps its run."""
        query = update(RunRecord).where(
            RunRecord.id == seen.id,
            RunRecord.state == seen.state,
            RunRecord.heartbeat_at == seen.heartbeat_at,
            RunRecord.pid.is_not_distinct_from(seen.pid),
            RunRecord.host.is_not_distinct_from(seen.host),
        ).values(**fields)
        with self.write_transaction() as conn:
            return conn.execute(query).rowcount == 1

    def _insert_ignoring_duplicates(self, model):
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        return dialect_insert(model).on_conflict_do_nothing()

    # -- reads ----------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Optional[RunRecord]:
        with Session(self.engine) as session:
            return session.get(RunRecord, run_id)

    def find_runs(
        self, project: Optional[str] = None, owner: Optional[str] = None, name: Optional[str] = None
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered by project, owner and name."""
        query = select(RunRecord).order_by(RunRecord.created_at.desc())
        if project is not None:
            query = query.where(RunRecord.project == project)
        if owner is not None:
            query = query.where(RunRecord.owner == owner)
        if name is not None:
            query = query.where(RunRecord.name == name)
        with Session(self.engine) as session:
            return list(session.exec(query).all())

    def resolve_run(self, ref: str) -> Optional[RunRecord]:
        """A run by id or name, optionally prefixed with ``project/`` or ``owner/project/`` (which
        must then match); by name, the newest of that name."""
        parts = ref.strip("/").split("/")
        owner, project, last = (parts[-3] if len(parts) >= 3 else None), (parts[-2] if len(parts) >= 2 else None), parts[-1]
        run = self.get_run(last)
        if run is not None and (project is None or run.project == project) and (owner is None or run.owner == owner):
            return run
        by_name = self.find_runs(name=last, project=project, owner=owner)
        return by_name[0] if by_name else None

    def count_runs(self, project: str) -> int:
        query = select(func.count()).select_from(RunRecord).where(RunRecord.project == project)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def iter_history(self, run_id: str, page_size: int = 20) -> Iterator[dict]:
        """Every history row of a run in step order, reading ``page_size`` chunks at a time."""
        last_id = 0
        while True:
            query = (
                select(HistoryChunk.id, HistoryChunk.data)
                .where(HistoryChunk.run_id == run_id, HistoryChunk.id > last_id)
                .order_by(HistoryChunk.id)
                .limit(page_size)
            )
            with self.engine.connect() as conn:
                chunks = conn.execute(query).all()
            if not chunks:
                return
            for _chunk_id, data in chunks:
                yield from jsoncodec.unpack_rows(data)
            last_id = chunks[-1][0]

    def last_history(self, run_id: str, limit: int = 1000) -> list[dict]:
        """The last ``limit`` history rows of a run, oldest first."""
        rows: list[dict] = []
        before = None
        while len(rows) < limit:
            query = select(HistoryChunk.id, HistoryChunk.data).where(HistoryChunk.run_id == run_id)
            if before is not None:
                query = query.where(HistoryChunk.id < before)
            with self.engine.connect() as conn:
                chunk = conn.execute(query.order_by(HistoryChunk.id.desc()).limit(1)).first()
            if chunk is None:
                break
            before = chunk[0]
            rows[:0] = jsoncodec.unpack_rows(chunk[1])
        return rows[-limit:]

    def count_history(self, run_id: str) -> int:
        query = select(func.coalesce(func.sum(HistoryChunk.n_rows), 0)).where(HistoryChunk.run_id == run_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def alerts_of(self, run_id: str) -> list[AlertRecord]:
        with Session(self.engine) as session:
            query = select(AlertRecord).where(AlertRecord.run_id == run_id).order_by(AlertRecord.id)
            return list(session.exec(query).all())

    def firing_rule_alerts(self, run_id: str) -> list[tuple[str, Optional[str], float]]:
        """``(rule, metric, created_at)`` of the rule series of a run whose last alert says firing."""
        query = (select(AlertRecord.rule, AlertRecord.metric, AlertRecord.status, AlertRecord.created_at)
                 .where(AlertRecord.run_id == run_id, AlertRecord.source == "rule").order_by(AlertRecord.id))
        last: dict[tuple, tuple] = {}
        with self.engine.connect() as conn:
            for rule, metric, status, created_at in conn.execute(query).all():
                last[(rule, metric)] = (status, created_at)
        return [(rule, metric, at) for (rule, metric), (status, at) in last.items() if status == "firing"]

    def media_of(self, run_id: str) -> list[MediaRecord]:
        with Session(self.engine) as session:
            query = select(MediaRecord).where(MediaRecord.run_id == run_id).order_by(MediaRecord.id)
            return list(session.exec(query).all())


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def open_store(url: str) -> Store:
    """The process's one :class:`Store` for ``url`` (engines are shared, not rebuilt per run)."""
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = Store(url)
        return store


def forget_stores() -> None:
    """Drop every cached store (after a fork, or between tests using different folders)."""
    with _stores_lock:
        for store in _stores.values():
            store.dispose()
        _stores.clear()


def _after_fork_in_child() -> None:
    _fork_gate.after_fork_in_child()
    # A forked child must not use its parent's pooled connections (SQLite handles and PostgreSQL
    # sockets are not shareable across processes): its engines open their own, leaving the parent's
    # to the parent (close=False).
    global _stores_lock
    _stores_lock = threading.Lock()
    for store in _stores.values():
        store.engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_fork_gate.before_fork, after_in_parent=_fork_gate.after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
