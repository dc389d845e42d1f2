"""One background writer per destination in a process: the registry the embedded writer (one per
store) and the remote writer (one per server, key and spool folder) both keep.

A writer is reused while it belongs to this process and its thread runs; a forked child starts afresh
(it has the parent's writers but not their threads); :meth:`WriterRegistry.close_all` flushes and stops
this process's writers at exit.
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Generic, Hashable, TypeVar

W = TypeVar("W")


class WriterRegistry(Generic[W]):
    """Writers by key, each made at most once per process while its thread lives."""

    def __init__(self) -> None:
        self._writers: dict[Hashable, W] = {}
        # Re-entrant: a SIGTERM handler on the main thread may interrupt a holder and call in again.
        self._lock = threading.RLock()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._writers.clear)

    def get(self, key: Hashable, make: Callable[[], W]) -> W:
        """The live writer for ``key``, made with ``make()`` when there is none (or only a dead one)."""
        with self._lock:
            writer = self._writers.get(key)
            if writer is None or writer.pid != os.getpid() or not writer._thread.is_alive():
                writer = self._writers[key] = make()
            return writer

    def close_all(self, timeout: float = 30.0) -> None:
        """Flush and stop every writer of this process (at interpreter exit, after the runs finish)."""
        with self._lock:
            writers = list(self._writers.values())
            self._writers.clear()
        for writer in writers:
            if writer.pid == os.getpid():
                writer.close(timeout)
