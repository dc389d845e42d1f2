"""``alert()``'s argument rules and its per-run, per-title suppression window, as wandb has them."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Optional, Union

from alerts.levels import LEVEL_ORDER, AlertLevel  # noqa: F401 (AlertLevel is public here too)
from alerts.rules.templates import MAX_TITLE_CHARS

DEFAULT_WAIT_SECONDS = 60.0




def check_level(level: Union[str, AlertLevel, None]) -> str:
    """The level as ``"INFO"|"WARN"|"ERROR"``; ``None`` is INFO; anything else is a ``ValueError``.

    Strings are compared case-sensitively, as wandb does: ``"info"`` is an error.
    """
    if level is None:
        return AlertLevel.INFO.value
    value = level.value if isinstance(level, AlertLevel) else level
    if value not in LEVEL_ORDER:
        raise ValueError("level must be one of 'INFO', 'WARN', or 'ERROR'")
    return value


def check_wait_duration(wait_duration: Union[int, float, timedelta, None]) -> float:
    """The suppression window in seconds, by wandb's rules.

    A falsy value (``None``, 0, ``timedelta(0)``) means 60 s; an int or float is seconds; anything with
    ``total_seconds()`` (a timedelta) is taken as a duration; anything else is a ``TypeError``.
    """
    if not wait_duration:
        return DEFAULT_WAIT_SECONDS
    if isinstance(wait_duration, (int, float)):
        return float(wait_duration)
    total_seconds = getattr(wait_duration, "total_seconds", None)
    if callable(total_seconds):
        return float(total_seconds())
    raise TypeError("wait_duration must be an int, float, or datetime.timedelta")


class AlertThrottle:
    """Remembers when each title last notified, and says whether a new call may notify.

    Pure apart from its memory: the caller passes ``now``. The window is counted from the last call
    that *notified*, so a title repeated every second notifies once a window, not never.

    Titles are told apart by their full text, not by the cut one that is shown (``clip_title``): two
    long titles that differ after :data:`MAX_TITLE_CHARS` are two alerts, never one suppressing the
    other. A long title is remembered by its first characters and a digest of the rest, so a huge
    title is not kept alive here.

    Memory is bounded by the titles of the last window, not by every title a run ever raised: a
    title is forgotten once it is older than the longest ``wait_duration`` the run has used, when
    it could no longer suppress anything passed so far. Sweeps are amortised: one each time the
    memory doubles (at least :data:`SWEEP_AT` titles), so ``allow`` stays O(1) on average.
    """

    SWEEP_AT = 1024

    def __init__(self) -> None:
        self._last_notified: dict[str, float] = {}
        self._longest_wait = 0.0
        self._sweep_at = self.SWEEP_AT

    def __len__(self) -> int:
        """How many titles are remembered."""
        return len(self._last_notified)

    def allow(self, title: str, wait_seconds: float, now: float) -> tuple[bool, Optional[str]]:
        """``(True, None)`` to notify now, or ``(False, reason)`` to record as suppressed."""
        key = _title_key(title)
        last = self._last_notified.get(key)
        if last is not None and now - last < wait_seconds:
            return False, f"same title notified {now - last:.1f}s ago (wait_duration {wait_seconds:g}s)"
        self._longest_wait = max(self._longest_wait, wait_seconds)
        self._last_notified.pop(key, None)  # re-inserted last: the dict stays oldest first
        self._last_notified[key] = now
        if len(self._last_notified) >= self._sweep_at:
            self._sweep(now)
        return True, None

    def forget(self, title: str) -> None:
        """The last notification of ``title`` did not go out: do not count it."""
        self._last_notified.pop(_title_key(title), None)

    def _sweep(self, now: float) -> None:
        """Forget the titles no window can still cover (oldest first: they are in notification order)."""
        horizon = now - self._longest_wait
        stale = []
        for key, last in self._last_notified.items():
            if last > horizon:
                break
            stale.append(key)
        for key in stale:
            del self._last_notified[key]
        self._sweep_at = max(self.SWEEP_AT, 2 * len(self._last_notified))


def _title_key(title: str) -> str:
    if len(title) <= MAX_TITLE_CHARS:
        return title
    digest = hashlib.blake2b(title.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
    return f"{title[:MAX_TITLE_CHARS]}#{digest}"
