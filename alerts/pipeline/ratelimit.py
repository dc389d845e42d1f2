"""Token buckets, one per destination: Slack's ~1 message per second per channel with a short burst,
and a cap per hour for email. Pure: the caller passes ``now``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def _refill(self, now: float) -> None:
        if self.tokens < 0:  # first use: a full bucket
            self.tokens, self.updated = self.burst, now
            return
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def ready(self, now: float) -> bool:
        """Whether a token is there (without spending it)."""
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> bool:
        """Spend a token if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def pause_until(self, when: float) -> None:
        """No token before ``when``; one token at ``when`` (a 429's Retry-After)."""
        self.tokens, self.updated = 1.0, when

    def next_at(self, now: float) -> float:
        """When the next token will be there."""
        self._refill(now)
        return now if self.tokens >= 1.0 else now + (1.0 - self.tokens) / self.rate


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
