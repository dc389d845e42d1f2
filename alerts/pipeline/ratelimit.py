"""Token buckets, one per destination: Slack's ~1 message per second per channel with a short burst,
and a cap per hour for email; one per user over all their channels. Pure: the caller passes ``now``.

The buckets' state lives in the store (alerts/delivery/state.py), so that every process sending for
the store shares one bucket per destination and per user; this module only does the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up.

    ``tokens`` is the count as of ``updated`` (``None``: never used, a full bucket). An ``updated``
    later than ``now`` is a pause: no token is there before it (see :meth:`pause_until`).
    """

    rate: float
    burst: float
    tokens: Optional[float] = None
    updated: float = 0.0

    def _refill(self, now: float) -> None:
        if self.tokens is None:  # first use: a full bucket
            self.tokens, self.updated = self.burst, now
            return
        if now > self.updated:  # time never runs backwards: a pause keeps its tokens for later
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def ready(self, now: float) -> bool:
        """Whether a token is there (without spending it)."""
        self._refill(now)
        return now >= self.updated and self.tokens >= 1.0

    def take(self, now: float) -> bool:
        """Spend a token if there is one."""
        if not self.ready(now):
            return False
        self.tokens -= 1.0
        return True

    def give_back(self, now: float) -> None:
        """Return a token taken for a send that failed (never above ``burst``)."""
        self._refill(now)
        self.tokens = min(self.burst, self.tokens + 1.0)

    def pause_until(self, when: float) -> None:
        """No token before ``when``; one token at ``when`` (a 429's Retry-After)."""
        if self.tokens is not None and self.updated >= when:
            return  # already paused as long or longer
        self.tokens, self.updated = 1.0, when

    def next_at(self, now: float) -> float:
        """When the next token will be there."""
        self._refill(now)
        start = max(now, self.updated)
        return start if self.tokens >= 1.0 else start + (1.0 - self.tokens) / self.rate


def decide(destination: TokenBucket, user: TokenBucket, last_sent: Optional[float], now: float,
           interval: float) -> Optional[float]:
    """Whether one message of a group may go at ``now``: ``None`` means yes (a token is taken from
    both buckets); otherwise the time to ask again: the group's interval since its last message,
    or the next token of the destination and of the user."""
    if last_sent is not None and now - last_sent < interval:
        return last_sent + interval
    if not (destination.ready(now) and user.ready(now)):
        return max(destination.next_at(now), user.next_at(now))
    destination.take(now)
    user.take(now)
    return None


# A cap on the messages one user gets an hour, over all their channels: a storm folds into fewer,
# fuller messages instead of a phone that buzzes all night.
USER_PER_HOUR, USER_BURST = 120.0, 20.0
SLACK_RATE, SLACK_BURST = 1.0, 2.0  # Slack: "1 message per second per channel", short bursts allowed
EMAIL_PER_HOUR = 30.0


def user_bucket() -> TokenBucket:
    return TokenBucket(rate=USER_PER_HOUR / 3600.0, burst=USER_BURST)


def bucket_for(kind: str) -> TokenBucket:
    if kind == "email":
        return TokenBucket(rate=EMAIL_PER_HOUR / 3600.0, burst=5.0)
    return TokenBucket(rate=SLACK_RATE, burst=SLACK_BURST)
