"""API keys checked lately, remembered for a few seconds: every API request presents a key, and looking
it up in the store (a query joining keys and users) was the largest part of a heartbeat's cost.

Only keys that were valid are remembered, by their SHA-256 (the key itself is not kept), each for
``ttl`` seconds from the lookup that found it valid. So a key revoked, or a user disabled, in the store
(``alerts keys revoke``, from any process or replica) stops working here within ``ttl`` seconds; an
unknown or revoked key is looked up every time, and filling the cache with made-up keys is impossible.
``ttl`` 0 turns the cache off.
"""

from __future__ import annotations

import threading
from typing import Optional

from alerts.server.accounts import Principal, authenticate_digest, hash_key, plausible_key
from alerts.store.db import Store

# The default of ``ALERTS_KEY_CACHE_SECONDS``: how long a revoked key may still be accepted.
DEFAULT_TTL_S = 5.0
# Keys remembered at most (a few per user in practice); past it the cache starts again empty.
MAX_ENTRIES = 10_000


class KeyCache:
    """``lookup(store, key, now)``: :func:`~alerts.server.accounts.authenticate`, remembered for ``ttl`` s."""

    def __init__(self, ttl: float = DEFAULT_TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}  # digest -> (who, checked at)
        self._lock = threading.Lock()

    def lookup(self, store: Store, key: str, *, now: float) -> Optional[Principal]:
        """The user ``key`` belongs to, or None; from memory if it was found valid less than ``ttl``
        seconds ago (by the clock ``now`` comes from), else from the store."""
        if not plausible_key(key):
            return None
        digest = hash_key(key)
        entry = self._entries.get(digest)
        # A clock that went backwards (checked_at in the future) is a miss, not a longer life.
        if entry is not None and 0 <= now - entry[1] < self.ttl:
            return entry[0]
        principal = authenticate_digest(store, digest)
        with self._lock:
            if principal is None or self.ttl <= 0:
                self._entries.pop(digest, None)
            else:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[digest] = (principal, now)
        return principal

    def forget(self) -> None:
        """Drop every remembered key (after this process revoked one: no need to wait ``ttl``)."""
        with self._lock:
            self._entries.clear()
