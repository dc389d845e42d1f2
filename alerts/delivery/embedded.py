"""Delivery inside the logging process (the embedded mode): one channel set and one relay per store.

The relay thread sends what this process's runs raise; at exit it gets a bounded wait to finish
(:func:`drain_all`), and whatever is left is handed to the store's detached relay
(:mod:`alerts.delivery.detached`), a process that outlives this one and sends it on its schedule.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Optional

from alerts.channels.config import ChannelLoadError, ChannelSet, load_channels
from alerts.delivery import detached, outbox
from alerts.settings import Settings
from alerts.store.db import Store

logger = logging.getLogger("alerts")

_lock = threading.Lock()
_channel_sets: dict[str, Optional[ChannelSet]] = {}
_relays: dict = {}  # store URL -> Relay (its module is imported when the first relay starts)


def channels_for(settings: Settings) -> Optional[ChannelSet]:
    """The channel files of ``ALERTS_CHANNELS``, loaded once per process; None (logged) if they do not load."""
    key = str(Path(settings.channels).resolve())
    with _lock:
        if key not in _channel_sets:
            try:
                _channel_sets[key] = load_channels([settings.channels],
                                                   webhook_hosts=settings.slack_webhook_hosts.split(","))
            except ChannelLoadError as exc:
                logger.error("alerts: channel files in %s did not load; alerts are recorded and printed, "
                             "not sent:\n%s", settings.channels, exc)
                _channel_sets[key] = None
        return _channel_sets[key]


def relay_for(store: Store, channels: ChannelSet, settings: Settings):
    """The process's relay for a store, started. (Imported here: Slack and SMTP clients load only
    in processes that have channels.)"""
    from alerts.delivery.relay import Relay

    with _lock:
        relay = _relays.get(store.url)
        if relay is None:
            relay = _relays[store.url] = Relay(store, channels, settings)
        return relay.start()


def drain_all(timeout: float = 10.0) -> None:
    """At exit: give every relay up to ``timeout`` seconds in all to send what is pending, then hand
    what is left to the store's detached relay."""
    with _lock:
        relays = list(_relays.values())
        _relays.clear()
    deadline = time.monotonic() + timeout
    for relay in relays:
        drain_bounded(relay, max(0.0, deadline - time.monotonic()))
        _hand_over(relay)


def drain_bounded(relay, timeout: float) -> None:
    """``relay.drain(timeout)``, waited for at most ``timeout`` seconds, whatever the channels do.

    A send can outlast the deadline (a webhook or SMTP server that accepts and never answers holds
    it for the client's whole timeout, 10-15 s), so the drain runs on a daemon thread and is left
    behind at the deadline: the rows it holds are freed by the next relay on this host as soon as
    this process is gone.
    """
    def drain() -> None:
        try:
            relay.drain(timeout)
        except Exception:  # at exit: log, never raise into the interpreter's shutdown
            logger.exception("alerts: the delivery relay failed at exit")

    thread = threading.Thread(target=drain, name="alerts-exit-drain", daemon=True)
    thread.start()
    thread.join(timeout)


def _hand_over(relay) -> None:
    """If rows are still pending, make sure the store's detached relay sends them, and say so."""
    try:
        left = outbox.pending_count(relay.store)
        if not left:
            return
        handed = detached.hand_over(relay.store, relay.settings)
    except Exception:  # the store refuses (locked, unreachable) at exit: the rows stay for the next relay
        logger.exception("alerts: could not hand pending notifications to a detached relay")
        return
    if handed is None:
        logger.warning("alerts: %d notification(s) not sent yet; they stay in the outbox and are sent "
                       "by the next run or by `alerts relay`", left)
        return
    logger.warning("alerts: %d notification(s) not sent yet: %s", left, handed.describe())


def forget() -> None:
    """Stop relays and drop cached channel sets (tests)."""
    with _lock:
        relays = list(_relays.values())
        _relays.clear()
        _channel_sets.clear()
    for relay in relays:
        relay.stop()


def _after_fork_in_child() -> None:
    # The parent's relays live on its threads; a forked child has none of them running and must not
    # drain the parent's outbox at its own exit (a Pool worker ended by SIGTERM).
    _relays.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
