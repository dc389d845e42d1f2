"""The detached relay: what a process leaves in the outbox at exit is sent by a relay that outlives it.

A script that exits while rows are still pending (backing off because Slack answers 500, or waiting
for their group interval) starts ``alerts relay --detached`` (:func:`hand_over`), unless one already
runs for the store. That process:

- is one per store: it holds the store's ``relay`` lease (a row in the ``leases`` table, so it works
  on SQLite and PostgreSQL alike), renewed every few seconds. The exiting script takes the lease for
  it *before* starting it, so two scripts exiting at once start one relay, not two;
- holds nothing of the script: its own session (so not the script's process group), stdin from
  /dev/null, stdout and stderr appended to ``relay.log`` in ``ALERTS_DIR``. A job runner that captures
  the script's output or waits for its process group sees the script end when the script ends;
- runs with the script's settings (``ALERTS_DIR``, ``ALERTS_CHANNELS`` and ``ALERTS_RULES`` made
  absolute, ``ALERTS_DATABASE_URL``, Slack and SMTP settings from the environment);
- sends on the rows' own schedule, sleeping until the next row is due (:func:`serve`), and exits when
  nothing is pending (only sent, dead or suppressed rows remain).

While ``alerts serve`` runs on the store with the same delivery settings, the server holds this lease
(its ``relay`` job, :mod:`alerts.server.jobs`): a script's exit finds it held and starts nothing, since
the server sends what the script leaves (:attr:`HandOver.server`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Optional

from sqlalchemy import and_, func, select

from alerts import clock as _clock
from alerts.processes import pid_alive
from alerts.delivery import outbox
from alerts.settings import Settings
from alerts.store import leases
from alerts.store.db import Store
from alerts.store.models import DeliveryRecord, LeaseRecord

logger = logging.getLogger("alerts")

LEASE = "relay"  # the lease name's prefix: one detached relay per store *and* delivery settings (lease_name)
LEASE_SECONDS = 60.0  # a relay that stops renewing (hung, stopped) loses the store's relay lease after this
RENEW_EVERY = 10.0  # seconds between renewals, on a thread of its own, so a slow send cannot lose the lease
START_SECONDS = 30.0  # how long a starting relay's lease is kept for it before anyone may take it
MAX_SLEEP = 5.0  # the relay looks for new rows at least this often, even when the next is due later
MAX_FAILURES = 60  # passes failing in a row (the database unreachable for ~5 min) before the relay gives up
BUSY_RECHECK = 1.0  # rows leased by another process (a script's exit drain): look again this soon
SERVER_TAG = "serve-"  # in the holder names of `alerts serve` replicas (host:pid:serve-xxxx): a server relays
LOG_NAME = "relay.log"
LOG_MAX_BYTES = 1_000_000  # relay.log is moved to relay.log.1 at this size, so it never grows without bound


# -- what is pending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """The store's pending rows: how many, and when the next one falls due (None: none pending)."""

    count: int
    next_due: Optional[float]
    leased: int  # of ``count``, how many a relay holds right now (being sent)


def pending(store: Store, now: float, destinations: Optional[Collection[str]] = None) -> Pending:
    """How many rows are pending (for ``destinations``, if given: the ones a relay can send), how
    many are leased at ``now``, and the earliest due time of the rest."""
    is_pending = DeliveryRecord.state == "pending"
    if destinations is not None:  # rows no channel here can judge must not keep the relay alive
        is_pending = and_(is_pending, DeliveryRecord.destination.in_(sorted(destinations)))
    is_leased = DeliveryRecord.lease_until >= now
    with store.engine.connect() as conn:
        count = int(conn.execute(select(func.count()).where(is_pending)).scalar_one())
        if not count:
            return Pending(0, None, 0)
        leased = int(conn.execute(select(func.count()).where(is_pending, is_leased)).scalar_one())
        next_due = conn.execute(select(func.min(DeliveryRecord.next_attempt_at))
                                .where(is_pending, ~is_leased | DeliveryRecord.lease_until.is_(None))).scalar_one()
    return Pending(count, next_due, leased)


def next_wait(state: Pending, now: float) -> Optional[float]:
    """Seconds to sleep before the next pass (None: nothing pending, stop). Never longer than
    :data:`MAX_SLEEP`, so rows committed meanwhile by a live process are not left waiting."""
    if not state.count:
        return None
    wait = MAX_SLEEP if state.next_due is None else max(0.0, state.next_due - now)
    if state.leased:  # another process is sending them, or died doing so: its lease is freed soon
        wait = min(wait, BUSY_RECHECK)
    return min(wait, MAX_SLEEP)


# -- the lease ---------------------------------------------------------------------------------------


def _holder(pid: Optional[int], tag: str) -> leases.Holder:
    host = socket.gethostname()
    return leases.Holder(name=f"{host}:{pid or 0}:{tag}", host=host, pid=pid)


class _Renewer:
    """Renews the relay lease every :data:`RENEW_EVERY` seconds on its own thread; ``lost`` once it could not."""

    def __init__(self, store: Store, lease: str, holder: leases.Holder, clock: Callable[[], float]) -> None:
        self.store, self.lease, self.holder, self.clock = store, lease, holder, clock
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts-relay-lease", daemon=True)

    def start(self) -> "_Renewer":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            try:
                if not leases.renew(self.store, self.lease, self.holder, self.clock(), LEASE_SECONDS):
                    logger.warning("alerts: the relay lease was taken by another relay; stopping")
                    self.lost.set()
                    return
            except Exception:  # the database is away for a moment: try again at the next renewal
                logger.exception("alerts: could not renew the relay lease")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def lease_name(settings: Settings) -> str:
    """The lease of the detached relay for ``settings``' channels: one per store and per set of
    delivery settings (channel folder, SMTP host, Slack bot token), because a relay sends only the
    rows it can judge. Scripts sharing channel files share one relay; a script with other channel
    files gets its own, so its rows are never left to a relay that cannot send them."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    identity = "\n".join([str(Path(settings.channels).resolve()), settings.smtp_host or "",
                          hashlib.sha256(token.encode()).hexdigest() if token else ""])
    return f"{LEASE}:{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


# -- the detached relay's loop -------------------------------------------------------------------------


def serve(store: Store, relay, *, token: Optional[str] = None, clock: Callable[[], float] = _clock.now,
          sleep: Callable[[float], None] = time.sleep) -> bool:
    """Be the store's detached relay: send pending rows on their schedule until none is pending.

    ``relay`` is a :class:`~alerts.delivery.relay.Relay` on ``store``. ``token`` names the lease a
    starter took on this process's behalf (:func:`hand_over`); without one the lease is taken if
    free. Returns False (having sent nothing) when another relay holds the lease.
    """
    holder = _holder(os.getpid(), "relay-" + uuid.uuid4().hex[:6])
    lease = lease_name(relay.settings)
    now = clock()
    taken = (leases.take_over(store, lease, token, holder, now, LEASE_SECONDS) if token
             else leases.acquire(store, lease, holder, now, LEASE_SECONDS, pid_alive))
    if not taken:
        return False
    renewer = _Renewer(store, lease, holder, clock).start()
    try:
        _loop(store, relay, holder, renewer, clock, sleep)
    finally:
        renewer.stop()
        leases.release(store, lease, holder)
    return True


def _loop(store: Store, relay, holder: leases.Holder, renewer: _Renewer, clock, sleep) -> None:
    failures = 0
    while not renewer.lost.is_set():
        try:
            wait = _pass(store, relay, holder, renewer, clock)
            failures = 0
        except Exception:  # the database away for a moment (a PostgreSQL restart): try again shortly
            failures += 1
            logger.exception("alerts: the detached relay's pass failed (%d in a row)", failures)
            if failures >= MAX_FAILURES:
                return  # the rows stay pending: the next script's exit starts a relay again
            wait = MAX_SLEEP
        if wait is None:
            # Release, then look again: a script that saw the lease held before this release
            # committed its rows before looking, so they are seen here; one that looks after it
            # finds the lease free and starts a relay of its own.
            leases.release(store, renewer.lease, holder)
            if not pending(store, clock(), relay.judged).count:
                return
            if not leases.acquire(store, renewer.lease, holder, clock(), LEASE_SECONDS, pid_alive):
                return  # a new relay took over
            continue
        sleep(wait)


def _pass(store: Store, relay, holder: leases.Holder, renewer: _Renewer, clock) -> Optional[float]:
    """Send what is due; return how long to sleep before the next pass (None: nothing pending)."""
    # The script that handed over may have died holding rows (its exit drain was cut off at the
    # deadline): on this host they are due again at once, not when their lease runs out.
    outbox.release_dead_leases(store, holder.host, clock(), pid_alive)
    delivered = relay.counters.alerts_delivered_total
    while relay.run_once() and not renewer.lost.is_set():
        pass  # more may be due: a storm is claimed in batches
    if relay.counters.alerts_delivered_total != delivered:
        logger.info("alerts: sent %d alert(s)", relay.counters.alerts_delivered_total - delivered)
    return next_wait(pending(store, clock(), relay.judged), clock())


# -- starting it -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandOver:
    """What :func:`hand_over` did: started a relay (``started``), or found one (``pid``) running; or
    found the store relayed by an ``alerts serve`` replica (``server``, on ``host``)."""

    started: bool
    pid: Optional[int]
    log: Path
    server: bool = False
    host: Optional[str] = None

    def describe(self) -> str:
        if self.server:
            return (f"the alert server (pid {self.pid} on {self.host}) relays this store and sends them "
                    "(`alerts deliveries` shows them)")
        who = f"a detached relay (pid {self.pid})" if self.pid else "the store's detached relay"
        verb = "was started and sends them" if self.started else "already runs and sends them"
        return f"{who} {verb} (`alerts deliveries` shows them; log: {self.log})"


def held_by_server(lease: Optional[LeaseRecord]) -> bool:
    """Whether a relay lease is held by an ``alerts serve`` replica (not a detached relay)."""
    return lease is not None and f":{SERVER_TAG}" in lease.holder


def log_path(settings: Settings) -> Path:
    """Where the detached relay of ``settings``'s store writes its log."""
    return settings.dir.absolute() / LOG_NAME


def relay_environment(settings: Settings, environ: Optional[dict] = None) -> dict:
    """The environment of a detached relay: the script's, with its folders made absolute (the relay
    runs elsewhere) and the database URL the script used, and this copy of ``alerts`` importable."""
    env = dict(os.environ if environ is None else environ)
    env["ALERTS_DIR"] = str(settings.dir.absolute())
    env["ALERTS_CHANNELS"] = str(settings.channels.absolute())
    env["ALERTS_RULES"] = str(settings.rules.absolute())
    if settings.database_url is not None:
        env["ALERTS_DATABASE_URL"] = settings.database_url.get_secret_value()
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def _open_log(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size > LOG_MAX_BYTES:
            path.replace(path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    return open(path, "ab")


_started: list[subprocess.Popen] = []  # kept referenced: a Popen dropped while its child runs warns


def spawn(settings: Settings, token: str) -> subprocess.Popen:
    """Start ``alerts relay --detached`` for ``settings``'s store, holding nothing of this process."""
    log = _open_log(log_path(settings))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alerts", "relay", "--detached", "--lease", token],
            env=relay_environment(settings), cwd=str(log_path(settings).parent),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True,
            start_new_session=True,  # not in the script's process group or session: no signal of theirs
        )
    finally:
        log.close()
    _started.append(proc)
    return proc


def hand_over(store: Store, settings: Settings, now: Optional[float] = None) -> Optional[HandOver]:
    """Make sure a detached relay sends what is pending in ``store``: start one, unless one runs.

    The lease is taken here, for the relay about to start, so that of several processes exiting at
    once exactly one starts it. Returns None if it could not be started (logged).
    """
    now = _clock.now() if now is None else now
    starter = _holder(None, "start-" + uuid.uuid4().hex[:8])
    lease = lease_name(settings)
    if not leases.acquire(store, lease, starter, now, START_SECONDS, pid_alive):
        current = leases.read(store, lease)
        return HandOver(started=False, pid=current.pid if current else None, log=log_path(settings),
                        server=held_by_server(current), host=current.host if current else None)
    try:
        proc = spawn(settings, starter.name)
    except OSError as exc:
        leases.release(store, lease, starter)
        logger.error("alerts: could not start the detached relay: %s", exc)
        return None
    return HandOver(started=True, pid=proc.pid, log=log_path(settings))


def running(store: Store, now: float, settings: Settings) -> Optional[LeaseRecord]:
    """The detached relay for ``settings``' channels on ``store`` at ``now``, if one runs."""
    lease = leases.read(store, lease_name(settings))
    if lease is None or lease.until < now:
        return None
    if lease.host == socket.gethostname() and lease.pid is not None and not pid_alive(lease.pid):
        return None
    return lease
