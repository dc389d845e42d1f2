"""Whether a process of this host still runs: what lets one process free what a dead one held
(run claims, outbox leases, the detached relay's lease) at once instead of after a timeout."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True unless the process ``pid`` of this host is known to be gone (a process of another user,
    or one we may not signal, counts as alive: never free what might still be held)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, someone else's
        return True
    return True
