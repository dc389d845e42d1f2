"""The rules reload across server replicas.

A reload asked of one replica (``POST /api/v1/rules/reload``, SIGHUP, ``alerts rules reload`` on its
folder) loads that replica's rule files and, if they load, moves the store's rules generation forward
(:mod:`alerts.store.generations`). Every replica's ``rules`` job (every 5 s) compares the store's
generation with the one it last followed and, when it moved, reloads its own rule files: one reload
reaches every replica within one pass. Replicas are meant to run with the same rule files (each reads
its own copy); a replica whose files do not load keeps its previous rules and logs why, as for a
reload asked of it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from alerts.store import generations
from alerts.store.db import Store

logger = logging.getLogger("alerts.server")

# Seconds between two looks from the request path (a replica without jobs, ALERTS_JOBS=0, has no rules
# job: its runs' batches are judged by rules that follow the others' reloads all the same).
FOLLOW_EVERY = 5.0


class RuleSync:
    """One replica's side: ``published`` after it reloaded on request, ``follow`` at each pass."""

    def __init__(self, store: Store, active: Any) -> None:
        self.store = store
        self.active = active  # the replica's ActiveRules
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        # The rules in force were just loaded from the files: reloads asked before now are included.
        self.seen = generations.current(store)
        self._next_look = float("-inf")
        self._lock = threading.Lock()  # one look at a time (the rules job, requests)

    def published(self, now: float) -> int:
        """This replica reloaded its rules on request: the others follow. The new generation."""
        self.seen = generations.bump(self.store, now, self.name)
        return self.seen

    def follow(self) -> bool:
        """Reload the rule files if another replica reloaded since the last look; True if reloaded."""
        if not self._lock.acquire(blocking=False):
            return False  # another thread is looking now
        try:
            current = generations.current(self.store)
            if current <= self.seen:
                return False
            self.seen = current  # a set that does not load is not retried until the next reload is asked
            if not self.active.load():
                return False
        finally:
            self._lock.release()
        logger.warning("alerts: rules reloaded from %s (%d rules): another replica reloaded them",
                       self.active.rules_path, len(self.active.ruleset))
        return True

    def follow_if_due(self, now: float) -> bool:
        """:meth:`follow`, at most every :data:`FOLLOW_EVERY` seconds (what a request calls)."""
        if now < self._next_look:
            return False
        self._next_look = now + FOLLOW_EVERY
        return self.follow()
