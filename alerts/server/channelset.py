"""The server's channel set: the channel files' channels (read-only) and the ones users made through
the API, merged into the one :class:`~alerts.channels.config.ChannelSet` that routing and the relay use.

``app.state.channels`` is that set, one object for the app's life: :meth:`ServerChannels.refresh`
changes it in place (``ChannelSet.replace``) after every change made through the API, so the relay
that holds it judges (sends to) a new channel at its next pass and never again sends to one that was
deleted or given another webhook. Other replicas of the server pick the changes up on their
scheduled tick (:meth:`ServerChannels.tick`, a cheap query).

A channel of the API whose key clashes with a file channel of the same user (the file gained a
channel of that name after the API's was made) is left out, with the reason logged and shown: the
file, the operator's word, wins.
"""

from __future__ import annotations

import threading
from typing import Optional

from alerts import logredact
from alerts.channels.config import ChannelSet, Destination
from alerts.delivery.embedded import channels_for
from alerts.server import channelstore
from alerts.settings import Settings
from alerts.store.db import Store
from alerts.store.models import ChannelRecord

# The server's log lines pass the redaction too (a filter on "alerts" does not see a child's records).
logger = logredact.guarded_logger("alerts.server")


class ServerChannels:
    """Builds and refreshes the merged channel set of one app."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.channels = ChannelSet()  # the one object handed out; refreshed in place
        self.shadowed: dict[int, str] = {}  # API channel id -> why it is left out
        self._lock = threading.Lock()
        self._fingerprint: Optional[str] = None
        self._said: set[int] = set()

    @property
    def files(self) -> Optional[ChannelSet]:
        """The channel files' set (None if they did not load: the reason is logged once)."""
        return channels_for(self.settings)

    @property
    def webhook_hosts(self) -> list[str]:
        return self.settings.slack_webhook_hosts.split(",")

    def refresh(self) -> ChannelSet:
        """Rebuild the merged set from the files and the store; returns it (the same object)."""
        with self._lock:
            fingerprint = channelstore.fingerprint(self.store)
            merged, shadowed = self._merge(channelstore.all_records(self.store))
            self.shadowed = shadowed
            self.channels.replace(merged)
            self._fingerprint = fingerprint
        return self.channels

    def tick(self, now: float) -> None:
        """A scheduled check: refresh if the API's channels changed (on another replica, say)."""
        try:
            if channelstore.fingerprint(self.store) != self._fingerprint:
                self.refresh()
        except Exception:  # the next tick tries again; the set in use stays as it was
            logger.exception("alerts: could not refresh the channels made through the API")

    def _merge(self, records: list[ChannelRecord]) -> tuple[ChannelSet, dict[int, str]]:
        files = self.files
        users: dict[str, list[Destination]] = {user: list(ds) for user, ds in (files.users if files else {}).items()}
        shadowed: dict[int, str] = {}
        for record in records:
            taken = {d.channel_key for d in users.get(record.user, [])}
            key = f"{record.user}/{record.name}"
            if key in taken:
                shadowed[record.id] = f"a channel file also names a channel {record.name!r} for {record.user}: it is used instead"
                if record.id not in self._said:
                    self._said.add(record.id)
                    logger.warning("alerts: API channel #%d (%s) is not used: %s", record.id, key, shadowed[record.id])
                continue
            try:
                users.setdefault(record.user, []).extend(channelstore.destinations(record))
            except Exception as exc:  # stored by an older version with other rules: never stop the rest
                shadowed[record.id] = f"its stored settings no longer load ({type(exc).__name__})"
                logger.warning("alerts: API channel #%d (%s) is not used: %s", record.id, key, shadowed[record.id])
        return ChannelSet(users=users, files=list(files.files) if files else []), shadowed


def install(app, settings: Settings, store: Store) -> ServerChannels:
    """Give ``app`` its merged channel set: ``app.state.channels`` (refreshed in place),
    ``app.state.server_channels`` (to refresh after a change) and a tick hook for other replicas."""
    registry = ServerChannels(settings, store)
    app.state.server_channels = registry
    app.state.channels = registry.refresh()
    app.state.tick_hooks.append(registry.tick)
    return registry
