"""The server is the relay of its store: :class:`ServerRelay` sends the outbox with ``app.state.channels``.

It is the embedded mode's :class:`~alerts.delivery.relay.Relay`, run by the scheduler (the ``relay``
job, :mod:`alerts.server.jobs`) instead of a thread of its own: one pass when woken
(``app.state.wake_relay()``, after a request committed outbox rows) and every second (rows that
scripts logging to the same store committed). The channel set may change while the server runs
(channels made through the API): the relay is rebuilt for the new set at its next pass, keeping its
counters.

The job holds the same lease as the store's detached relay for these delivery settings
(:func:`alerts.delivery.detached.lease_name`): a script logging to the store finds it held by the
server at exit and starts no detached relay, since the server sends what it leaves.
"""

from __future__ import annotations

from typing import Callable, Optional

from alerts.channels.config import ChannelSet
from alerts.delivery.relay import Counters, Relay
from alerts.settings import Settings
from alerts.store.db import Store

MAX_ROUNDS = 100  # claims in one pass (a storm is claimed 10,000 rows at a time): the job returns then


class ServerRelay:
    """Passes of a :class:`Relay` over the channels ``channels_of()`` returns at each pass."""

    def __init__(self, store: Store, settings: Settings, clock: Callable[[], float],
                 channels_of: Callable[[], Optional[ChannelSet]], counters: Optional[Counters] = None) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._channels_of = channels_of
        self.counters = counters if counters is not None else Counters()
        self._relay: Optional[Relay] = None
        self._channels: Optional[ChannelSet] = None

    def relay(self) -> Optional[Relay]:
        """The relay for the current channel set (None: no channels, nothing can be sent)."""
        channels = self._channels_of()
        if channels is None or not channels.users:
            return None
        if channels is not self._channels:
            self._relay = Relay(self.store, channels, self.settings, clock=self.clock, counters=self.counters)
            self._channels = channels
        return self._relay

    def run_once(self, now: Optional[float] = None) -> int:
        """Send what is due (at ``now``, or by the clock): claim until nothing is due; return how many
        rows were claimed."""
        relay = self.relay()
        if relay is None:
            return 0
        total = 0
        for _ in range(MAX_ROUNDS):
            claimed = relay.run_once(now)
            total += claimed
            if not claimed:
                break
        return total
