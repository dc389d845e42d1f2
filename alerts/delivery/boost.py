"""Give the delivery threads the GIL quickly while an alert is on its way.

CPython hands the GIL from a running thread to a waiting one only after the switch interval (5 ms by
default), and the writer and relay threads give the GIL up at every SQLite statement and socket call.
While the training thread spins in pure Python, the path of one alert (claim, check silences, send)
therefore waited ~5 ms at each of a few dozen steps (bench_delivery.py, ``alert-busy``). From the
commit that queued outbox rows until the relay has nothing left to do, the switch interval is
lowered to ``URGENT_SWITCH_INTERVAL``; then the interval the process had is put back (unless the
program changed it meanwhile). Outside those moments nothing changes: a lower interval costs the
training thread only while another thread waits for the GIL.
"""

from __future__ import annotations

import sys
import threading
from typing import Optional

URGENT_SWITCH_INTERVAL = 0.0002  # seconds (CPython's default is 0.005)

_lock = threading.Lock()
_saved: Optional[float] = None  # the interval to put back, while lowered
_ours: Optional[float] = None  # the interval as set by start(), read back (stored in microseconds)


def start() -> None:
    """Lower the switch interval (an alert's rows are committed and the relay is about to send)."""
    global _saved, _ours
    with _lock:
        if _saved is not None:
            return
        current = sys.getswitchinterval()
        if current <= URGENT_SWITCH_INTERVAL:
            return
        _saved = current
        sys.setswitchinterval(URGENT_SWITCH_INTERVAL)
        _ours = sys.getswitchinterval()


def end() -> None:
    """Put the process's switch interval back (the relay has nothing left to send now)."""
    global _saved
    with _lock:
        if _saved is None:
            return
        # Only ours is replaced: an interval the program set meanwhile is its own choice.
        if sys.getswitchinterval() == _ours:
            sys.setswitchinterval(_saved)
        _saved = None


def lowered() -> bool:
    """Whether the interval is lowered now."""
    return _saved is not None
