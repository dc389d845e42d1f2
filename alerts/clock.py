"""The one place that reads the wall clock.

Everything else takes a ``now`` (seconds since the epoch, a float) as a parameter, so that tests step a
:class:`FakeClock` instead of sleeping.
"""

from __future__ import annotations

import time
from typing import Callable

Clock = Callable[[], float]


def now() -> float:
    """Seconds since the epoch, from the wall clock."""
    return time.time()


class FakeClock:
    """A clock for tests: it stands still until :meth:`advance` steps it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.value = float(start)

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time."""
        self.value += seconds
        return self.value
