"""Which replica runs a job: a lease row per job in the store (:mod:`alerts.store.leases`).

Every replica schedules every job; before a run, a replica takes the job's lease (or keeps it: a
renewal is the same compare-and-set) and runs the job only if it holds it. The holder renews at each
run once a third of the lease has gone, so a replica that runs a job every second writes the lease
row every ten seconds, not every second. A holder that stops (SIGKILL, a lost host) keeps the job
until its lease runs out (``ttl``), or not at all on the same host: a lease whose holder's pid is
gone there is free at once. At shutdown a replica gives its leases up, so another takes over at its
next run.

The jobs themselves never rely on the lease for correctness: outbox rows are claimed row by row,
crashed runs are marked with a conditional update, retention deletes what is old. Two replicas
running one job at once (a lease that ran out mid-run) do the work twice, never send twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Optional

from alerts.processes import pid_alive
from alerts.store import leases
from alerts.store.db import Store

logger = logging.getLogger("alerts.server")

RENEW_AFTER = 1 / 3  # of the ttl: renew once this much of the lease has gone


class JobLeases:
    """One replica's view of its job leases: ``hold(name, ttl, now)`` says whether it may run the job."""

    def __init__(self, store: Store, holder: leases.Holder, is_alive: Callable[[int], bool] = pid_alive) -> None:
        self.store = store
        self.holder = holder
        self._is_alive = is_alive
        self._until: dict[str, float] = {}  # lease name -> until, for the leases this replica holds
        self._lock = threading.Lock()

    def hold(self, name: str, ttl: float, now: float) -> bool:
        """Take or keep the lease ``name`` until ``now + ttl``; True if this replica holds it now."""
        with self._lock:
            until = self._until.get(name)
        if until is not None and until - now > ttl * (1 - RENEW_AFTER):
            return True  # taken or renewed less than a third of the lease ago: no write needed
        try:
            held = leases.acquire(self.store, name, self.holder, now, ttl, self._is_alive)
        except Exception:
            logger.exception("alerts: could not take the lease of job %s", name)
            held = False
        with self._lock:
            if held:
                if until is None:
                    logger.info("alerts: this replica now runs %s", name)
                self._until[name] = now + ttl
            elif until is not None:
                logger.warning("alerts: another replica took over %s", name)
                self._until.pop(name, None)
        return held

    def holds(self, name: str) -> bool:
        """Whether this replica held the lease at its last look."""
        with self._lock:
            return name in self._until

    def release_all(self) -> None:
        """Give up every lease this replica holds (at shutdown: another replica takes over at once)."""
        with self._lock:
            names = list(self._until)
            self._until.clear()
        for name in names:
            try:
                leases.release(self.store, name, self.holder)
            except Exception:  # the database is away: the lease runs out by itself
                logger.exception("alerts: could not release the lease of job %s", name)

    def current(self, name: str) -> Optional[float]:
        """Until when this replica believes it holds ``name`` (None: it does not)."""
        with self._lock:
            return self._until.get(name)
