"""The server's scheduled jobs, run by APScheduler 3 (a ``BackgroundScheduler`` started in the app's
lifespan and shut down with it).

======================  =========  ========================================================================
job                     every      what
======================  =========  ========================================================================
``relay``               1 s        send the outbox (:mod:`alerts.server.relaying`); also at once when woken
                                   (``app.state.wake_relay()``, after a request committed outbox rows)
``crashed``             10 s       runs whose heartbeat stopped more than 2 minutes ago, their process
                                   gone, become ``crashed``; their ``run_state`` rules fire
``ticks``               5 s        every replica: ``app.state.tick_hooks`` (the stalled rules of the live
                                   runs it holds, its channel set's refresh), with ``now``
``silences``            5 min      delete silences that ended more than ``ALERTS_RETENTION`` ago
``retention``           10 min     delete history points older than ``ALERTS_HISTORY_RETENTION``
``rules``               5 s        every replica: reload the rules if ``alerts rules reload`` asked, or
                                   if another replica reloaded them (:mod:`alerts.server.rulesync`)
======================  =========  ========================================================================

With several replicas on one database, ``relay``, ``crashed``, ``silences`` and ``retention`` run on one
replica at a time: the one holding the job's lease (:mod:`alerts.server.joblease`). The relay's lease is
the store's detached-relay lease for the server's delivery settings, so scripts on the store hand
nothing over at exit. ``ticks`` and ``rules`` run on every replica: they look after what each replica
holds in memory (the rule engines of the runs whose batches it receives, its merged channel set, its
rule set), which no other replica can check for it.

Every job is a method taking ``now`` (:meth:`Jobs.run`): tests call it on a stepped clock instead of
starting the scheduler. A job that fails is logged and counted; the scheduler runs it again at its
next time. A job woken while it runs runs once more right after, so no wake is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from alerts.channels.console import ConsoleChannel
from alerts.delivery import detached
from alerts.pipeline import silence
from alerts.sdk import crashes
from alerts.server.joblease import JobLeases
from alerts.server.relaying import ServerRelay
from alerts.store import leases, retention

logger = logging.getLogger("alerts.server")

RELAY_EVERY = 1.0  # rows other processes (scripts on the store) commit are sent within this
CRASHED_EVERY = 10.0  # a crash is found within CRASH_AFTER (2 min) + this
TICKS_EVERY = 5.0  # stalled rules count in minutes
SILENCES_EVERY = 300.0
RETENTION_EVERY = 600.0
RULES_EVERY = 5.0
RELAY_LEASE = 30.0  # a replica on another host that dies hands the relay over within this
MIN_LEASE = 30.0  # other jobs: at least this, and three of their intervals


@dataclass
class Job:
    """A job: its name, how often it runs, its lease (None: every replica runs it) and its body."""

    name: str
    every: float
    body: Callable[[float], Any]
    lease: Optional[str]
    ttl: float
    fixed_now: bool = True  # the body gets the run's ``now``; False: ``None`` unless a caller gave one
    lock: threading.Lock = field(default_factory=threading.Lock)  # one run at a time in this replica
    again: bool = False  # woken while running: run once more


def replica_holder(host: Optional[str] = None, pid: Optional[int] = None) -> leases.Holder:
    """This replica's name in lease rows: ``host:pid:serve-<tag>`` (the tag tells a server from a
    detached relay, :func:`alerts.delivery.detached.held_by_server`)."""
    host = host or socket.gethostname()
    pid = pid or os.getpid()
    return leases.Holder(name=f"{host}:{pid}:{detached.SERVER_TAG}{uuid.uuid4().hex[:8]}", host=host, pid=pid)


class Jobs:
    """The jobs of one replica over ``state`` (the app's state: ``store``, ``settings``, ``clock``,
    ``rules``, ``channels``, ``tick_hooks``, ``metrics``, read at each run)."""

    def __init__(self, state: Any, holder: Optional[leases.Holder] = None) -> None:
        self.state = state
        self.store = state.store
        self.settings = state.settings
        self.clock: Callable[[], float] = state.clock
        self.host = socket.gethostname()
        self.leases = JobLeases(self.store, holder or replica_holder())
        metrics = getattr(state, "metrics", None)
        self.metrics = metrics
        self.relay = ServerRelay(self.store, self.settings, self.clock, lambda: getattr(state, "channels", None),
                                 metrics.relay_counters() if metrics is not None else None)
        self.jobs: dict[str, Job] = {}
        for job in (
            # The relay reads the clock at each decision (a pass with slow sends lasts), unless a test
            # gives it a ``now``.
            Job("relay", RELAY_EVERY, self.relay_pass, detached.lease_name(self.settings), RELAY_LEASE,
                fixed_now=False),
            Job("crashed", CRASHED_EVERY, self.crashed, "job:crashed", _ttl(CRASHED_EVERY)),
            Job("ticks", TICKS_EVERY, self.ticks, None, 0.0),  # per replica: see the module's docstring
            Job("silences", SILENCES_EVERY, self.expire_silences, "job:silences", _ttl(SILENCES_EVERY)),
            Job("retention", RETENTION_EVERY, self.retention, "job:retention", _ttl(RETENTION_EVERY)),
            Job("rules", RULES_EVERY, self.reload_rules_if_asked, None, 0.0),
        ):
            self.jobs[job.name] = job
        self._scheduler = None
        self._scheduler_lock = threading.Lock()  # stop() and the exit hook may race to shut it down

    # -- running a job -------------------------------------------------------------------------------

    def run(self, name: str, now: Optional[float] = None) -> str:
        """Run job ``name`` once at ``now`` (default: the clock) if this replica holds its lease.
        Returns ``"ran"``, ``"skipped"`` (another replica holds it), ``"busy"`` (it is running here:
        it runs once more when done) or ``"failed"`` (logged)."""
        job = self.jobs[name]
        if not job.lock.acquire(blocking=False):
            job.again = True
            return "busy"
        try:
            while True:
                job.again = False
                outcome = self._run_locked(job, now)
                now = None  # a run again is at the clock's time
                if not job.again or outcome != "ran":
                    break
        finally:
            job.lock.release()
        if job.again and outcome == "ran":
            self._poke(job)  # woken between our last look and the release: the waker saw us running
        return outcome

    def _run_locked(self, job: Job, now: Optional[float]) -> str:
        at = self.clock() if now is None else now
        if job.lease is not None:
            held = self.leases.hold(job.lease, job.ttl, at)
            self._gauge(job, held)
            if not held:
                self._count(job, "skipped")
                return "skipped"
        try:
            job.body(at if job.fixed_now else now)
        except Exception:
            logger.exception("alerts: the scheduled job %s failed; it runs again in %.0f s", job.name, job.every)
            self._count(job, "failed")
            return "failed"
        self._count(job, "ran")
        if self.metrics is not None:
            self.metrics.job_last_success.labels(job.name).set(at)
        return "ran"

    def _count(self, job: Job, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.job_runs.labels(job.name, outcome).inc()

    def _gauge(self, job: Job, held: bool) -> None:
        if self.metrics is not None:
            self.metrics.job_leader.labels(job.name).set(1 if held else 0)

    # -- the jobs ------------------------------------------------------------------------------------

    def relay_pass(self, now: Optional[float]) -> int:
        """Send what is due in the outbox; returns how many rows were claimed. ``now`` (tests): the
        whole pass happens then; None: each decision reads the clock."""
        return self.relay.run_once(now)

    def crashed(self, now: float) -> int:
        """Mark the runs that crashed, with their alerts and outbox rows (one transaction each);
        returns how many runs."""
        done = crashes.crash_and_alert(self.store, now, self.host, self.state.rules.ruleset,
                                       getattr(self.state, "channels", None))
        console = ConsoleChannel()
        for record, alerts in done:
            logger.warning("alerts: run %s (%s in %s) crashed: no heartbeat since %.0f s ago, %d alert(s)",
                           record.id, record.name, record.project, now - record.heartbeat_at, len(alerts))
            for row in alerts:
                _print(console, row, record)
        if any(alerts for _, alerts in done):
            self.wake_relay()
        return len(done)

    def ticks(self, now: float) -> None:
        """Run the tick hooks (stalled rules of live runs); one that fails does not stop the others."""
        for hook in list(getattr(self.state, "tick_hooks", ())):
            try:
                hook(now)
            except Exception:
                logger.exception("alerts: the tick hook %r failed", getattr(hook, "__name__", hook))

    def expire_silences(self, now: float) -> int:
        """Delete silences that ended more than ``ALERTS_RETENTION`` ago; returns how many."""
        count = silence.prune(self.store, now - self.settings.retention_seconds())
        if count:
            logger.info("alerts: deleted %d silence(s) expired more than %s ago", count, self.settings.retention)
        return count

    def retention(self, now: float) -> int:
        """Delete history points older than ``ALERTS_HISTORY_RETENTION`` (if set); returns how many chunks."""
        keep = self.settings.history_retention_seconds()
        if keep is None:
            return 0
        count = retention.prune_history(self.store, now - keep)
        if count:
            logger.info("alerts: deleted %d history chunk(s) older than %s", count, self.settings.history_retention)
        return count

    def reload_rules_if_asked(self, now: float) -> bool:
        """Reload the rules if ``alerts rules reload`` touched the marker in ``ALERTS_DIR`` (then the
        other replicas follow), or if another replica reloaded them (the store's rules generation)."""
        sync = getattr(self.state, "rule_sync", None)
        if self.state.rules.reload_if_asked():
            if sync is not None:
                sync.published(now)
            return True
        return sync.follow() if sync is not None else False

    def reload_rules(self) -> None:
        """SIGHUP: reload the rules (off the event loop: on the scheduler's pool, or here if none); the
        other replicas follow."""
        def load() -> None:
            if self.state.rules.load():
                logger.warning("alerts: rules reloaded from %s (%d rules)", self.state.rules.rules_path,
                               len(self.state.rules.ruleset))
                sync = getattr(self.state, "rule_sync", None)
                if sync is not None:
                    sync.published(self.clock())

        if self._scheduler is None:
            load()
        else:
            self._scheduler.add_job(load, id="reload-rules", replace_existing=True, misfire_grace_time=None)

    # -- the scheduler -------------------------------------------------------------------------------

    def wake_relay(self) -> None:
        """Send what was just committed: run the relay job now (or once more, if it is running)."""
        job = self.jobs["relay"]
        job.again = True
        if job.lock.locked():
            return  # it looks at ``again`` before and after letting go of its lock
        self._poke(job)

    def _poke(self, job: Job) -> None:
        """Have the scheduler run ``job`` now."""
        scheduler = self._scheduler
        if scheduler is None:
            return
        try:
            scheduler.modify_job(job.name, next_run_time=dt.datetime.now(dt.timezone.utc))
        except Exception:  # shutting down, or the job is gone: its next run sends them
            pass

    def start(self) -> "Jobs":
        """Start the scheduler: every job at once, then at its interval."""
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        # APScheduler says at INFO level that each run started and ended: every second, for the relay.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(max_workers=4)},
                                        job_defaults={"coalesce": True, "misfire_grace_time": None,
                                                      "max_instances": 2},
                                        timezone=dt.timezone.utc)
        first = dt.datetime.now(dt.timezone.utc)
        for job in self.jobs.values():
            scheduler.add_job(self.run, "interval", seconds=job.every, args=[job.name], id=job.name,
                              name=job.name, next_run_time=first)
        self._scheduler = scheduler
        scheduler.start()
        _stop_at_exit(self)
        logger.info("alerts: scheduled jobs started (%s) as %s", ", ".join(self.jobs), self.leases.holder.name)
        return self

    def stop(self) -> None:
        """Stop the scheduler (a running pass finishes) and give the leases up."""
        self._shutdown_scheduler()
        self.leases.release_all()

    def _shutdown_scheduler(self) -> None:
        with self._scheduler_lock:
            scheduler, self._scheduler = self._scheduler, None
        _running.discard(self)
        if scheduler is not None:
            scheduler.shutdown(wait=True)


# The replicas whose scheduler runs, for the exit hook (weakly: an app that is dropped is not kept).
_running: "weakref.WeakSet[Jobs]" = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def _stop_at_exit(jobs: Jobs) -> None:
    """Shut ``jobs``' scheduler down when the interpreter exits, if nothing stopped it before.

    At exit, before any ``atexit`` handler, concurrent.futures ends every thread pool's workers, and
    they mark their pool shut down. A scheduler still running then (an app whose lifespan never ended,
    or ended only in an ``atexit`` handler) submits its next due job (the relay: every second) to that
    pool, and APScheduler logs ``Error submitting job "relay ..." ... RuntimeError: cannot schedule new
    futures after shutdown`` on the way out. So the schedulers are shut down in a hook of that same
    exit step registered after concurrent.futures' own, which runs it first (the hooks run newest
    first). The leases are not given up there: the store may be gone by then; they run out.
    """
    global _exit_hook_registered
    import concurrent.futures.thread  # noqa: F401  (its hook first, so that ours runs before it)

    with _exit_hook_lock:
        _running.add(jobs)
        if _exit_hook_registered:
            return
        register = getattr(threading, "_register_atexit", None)  # CPython's, as concurrent.futures uses it
        if register is None:
            import atexit

            atexit.register(_shutdown_schedulers)
        else:
            try:
                register(_shutdown_schedulers)
            except RuntimeError:  # the interpreter is exiting already
                return
        _exit_hook_registered = True


def _shutdown_schedulers() -> None:
    for jobs in list(_running):
        try:
            jobs._shutdown_scheduler()
        except Exception:  # at exit: nothing to tell, nobody to tell it to
            pass


def _ttl(every: float) -> float:
    return max(MIN_LEASE, 3 * every)


def _print(console: ConsoleChannel, row: dict, record) -> None:
    """The console line of a crash alert, as the embedded mode prints it."""
    from alerts.channels.base import Notification

    try:
        console.send(Notification(title=row["title"], text=row["text"], level=row["level"], run_id=record.id,
                                  run_name=record.name, project=record.project, owner=record.owner,
                                  created_at=row["created_at"], source="rule", rule=row["rule"],
                                  status=row["status"]))
    except Exception:  # the console is a courtesy: the alert is recorded and routed already
        pass
