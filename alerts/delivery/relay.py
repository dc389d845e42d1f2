"""The relay: claims due outbox rows, groups them, paces them, sends them, records the outcome.

One message per (destination, group): the first alert of a group goes at once; alerts of the same
group that come within ``group_interval`` (``ALERTS_GROUP_INTERVAL``, 30 s) of a message wait and go
together in the next one, as "+N more". Each destination has a token bucket (Slack about one
message a second) and each user an hourly cap; rows that find one empty wait and fold into the next
message instead of being rejected by Slack. That state is in the store, shared by every relay on it
(alerts/delivery/state.py), so N processes send as one, not as N.

A relay claims only rows whose destination it has and can build a sender for; the rest stay pending
for a relay that can (said once in the log). A pass sends to different destinations at once (a few
threads) and renews its leases while it sends, so a slow webhook neither holds up the others nor
lets another relay send the same rows again.

:meth:`Relay.run_once` takes ``now`` and does one pass: tests drive it on a fake clock. The thread
started by :meth:`Relay.start` calls it when woken (a commit with deliveries) or every half second.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from contextlib import contextmanager
from typing import Callable, Iterator, Optional

from alerts import clock as _clock
from alerts.channels.base import DeliveryError, Notification
from alerts.channels.config import ChannelSet, Destination, SlackChannel
# Imported with the relay, not at the first send: that may be at interpreter exit, when Python
# refuses what these imports set up (concurrent.futures' exit hook).
from alerts.channels.email import EmailSender
from alerts.channels.slack import SlackApi, SlackWebhook
from alerts.delivery import outbox, state
from alerts.pipeline import silence
from alerts.processes import pid_alive
from alerts.settings import Settings
from alerts.store.db import Store

logger = logging.getLogger("alerts")

MAINTENANCE_EVERY = 15.0  # seconds between sweeps for expired rows and dead processes' leases
CONNECT_AHEAD_TIMEOUT = 0.4  # seconds a connection opened at init() may take (init() waits 0.5 s in all)
RENEWER_IDLE_EXIT = 60.0  # seconds without a pass after which a relay's lease-renewal thread ends
MAX_PARALLEL_DESTINATIONS = 8  # destinations one pass sends to at once (a slow webhook holds up no other)


@dataclass
class Counters:
    """What a relay did, counted: ``alerts relay`` prints them; the server's /metrics exports them
    (it passes a subclass that also feeds Prometheus: :mod:`alerts.server.metrics`).

    The relay calls :meth:`sent` and :meth:`failed` under its own lock (destinations are sent to from
    several threads), so an override needs no lock of its own.
    """

    notifications_total: dict = field(default_factory=lambda: defaultdict(int))  # messages sent, by channel type
    notifications_failed_total: dict = field(default_factory=lambda: defaultdict(int))  # by reason
    alerts_delivered_total: int = 0  # alerts carried by the sent messages
    latencies: list = field(default_factory=list)  # seconds from the alert to its message, last 1000

    def observe_latency(self, seconds: float) -> None:
        self.latencies.append(seconds)
        del self.latencies[:-1000]

    def sent(self, integration: str, delays: list, duration: float) -> None:
        """One message went to an ``integration`` (slack, email) carrying alerts raised ``delays``
        seconds before it went; the send itself took ``duration`` seconds."""
        self.notifications_total[integration] += 1
        self.alerts_delivered_total += len(delays)
        for delay in delays:
            self.observe_latency(delay)

    def failed(self, integration: str, reason: str, n: int = 1, duration: Optional[float] = None) -> None:
        """``n`` notifications to ``integration`` did not go, for ``reason``: ``retry`` (will be
        retried), ``rate_limited`` (a 429), ``permanent`` (dead), ``misconfigured`` (no sender could
        be built: not attempted) or ``silenced`` (muted on purpose). ``duration``: how long the
        failed attempt took (None: nothing was attempted)."""
        self.notifications_failed_total[reason] += n


def make_sender(destination: Destination, settings: Settings):
    """The sender for a destination (raises DeliveryError when it cannot be built, e.g. no bot token)."""
    config = destination.config
    if isinstance(config, SlackChannel):
        if config.webhook_url is not None:
            return SlackWebhook(config.webhook_url.get_secret_value(), server_url=settings.server_url)
        if settings.slack_bot_token is None:
            raise DeliveryError("ALERTS_SLACK_BOT_TOKEN is not set (needed for channel: targets)", recoverable=False)
        return SlackApi(settings.slack_bot_token.get_secret_value(), config.channel, base_url=settings.slack_api_url,
                        server_url=settings.server_url)
    return EmailSender(settings, config.to)


def _judgeable(channels: ChannelSet) -> set[str]:
    """The destination keys of a channel set. A multi-address email channel's own key is judged too:
    rows queued under it before each address had a row of its own go to the whole channel
    (ChannelSet.by_key)."""
    return {key for destinations in channels.users.values() for d in destinations for key in {d.key, d.channel_key}}


class Relay:
    """Empties the outbox of one store into the channels of a :class:`ChannelSet`.

    Every decision to send (a group's interval, a destination's pace, a user's cap) is taken on the
    state in the store (:mod:`alerts.delivery.state`), so any number of relays, in any number of
    processes, send as one. A relay claims only rows whose channel it has and can build a sender
    for; the others stay pending for a relay that can judge them.
    """

    def __init__(self, store: Store, channels: ChannelSet, settings: Settings,
                 clock: Optional[Callable[[], float]] = None, group_interval: Optional[float] = None,
                 sender_factory: Callable = make_sender, lease: Optional[float] = None,
                 counters: Optional[Counters] = None) -> None:
        self.store = store
        self.channels = channels
        self.settings = settings
        self.group_interval = settings.group_interval if group_interval is None else group_interval
        self.lease = lease  # None: outbox.LEASE_SECONDS, read at each claim
        self._clock = clock if clock is not None else _clock.now
        self._sender_factory = sender_factory
        self._senders: dict[str, object] = {}
        self._configs: dict[str, object] = {}  # the channel config each sender was built from
        # Destinations this relay can send to: those of its channel set whose sender builds.
        self._judged = _judgeable(channels)
        self._generation = channels.generation
        self._reported: set[str] = set()  # destinations whose rows we leave alone, said once each
        self._host = socket.gethostname()
        self._tag = uuid.uuid4().hex[:6]
        self._claims = 0
        self._maintained_at = float("-inf")  # the first pass frees dead leases and expires old rows
        self.counters = counters if counters is not None else Counters()
        self._counting = threading.Lock()  # destinations are sent to from several threads
        self._wake = threading.Event()
        self._stop = False
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()  # one pass at a time (the thread, or a drain at exit)
        self._renewal = threading.Condition()  # the pass whose leases the renewal thread keeps
        self._renewing_pass: Optional[tuple] = None
        self._renewer: Optional[threading.Thread] = None
        self.on_idle: Optional[Callable[[], None]] = None  # called when the thread has nothing due left

    @property
    def judged(self) -> frozenset:
        """The destinations this relay can send to (rows for others are left to a relay that can);
        changes of its channel set are adopted at the start of each pass."""
        return frozenset(self._judged)

    def _follow_channels(self) -> None:
        """Adopt the channel set's changes (the server's API changes it in place): judge its new
        destinations, and drop the senders built for channels that changed or went, so that a
        webhook replaced through the API is never sent to again."""
        if self.channels.generation == self._generation:
            return
        self._generation = self.channels.generation
        self._judged = _judgeable(self.channels)
        current = {d.key: d.config for destinations in self.channels.users.values() for d in destinations}
        for key in list(self._senders):
            if key not in current or self._configs.get(key) != current[key]:
                self._senders.pop(key, None)
                self._configs.pop(key, None)
        self._reported -= self._judged

    # -- one pass -----------------------------------------------------------------------------------

    def run_once(self, now: Optional[float] = None, probe: bool = True) -> int:
        """Claim what is due at ``now`` and send it; return how many rows were claimed.

        Each decision to send reads the clock again (a pass with slow sends lasts), unless ``now``
        is given: then the whole pass happens at ``now`` (tests). ``probe=False``: rows are known to
        be due (the thread was woken by their commit), so the claim does not look first.
        """
        with self._lock:
            self._follow_channels()
            clock = self._clock if now is None else (lambda: now)
            now = clock()
            if now - self._maintained_at >= MAINTENANCE_EVERY:
                # Not on every pass: transactions that would sit on the path of each alert.
                self._maintain(now)
            self._claims += 1
            token = outbox.owner_name(self._host, os.getpid(), f"{self._tag}-{self._claims}")
            lease = outbox.LEASE_SECONDS if self.lease is None else self.lease
            rows = outbox.claim(self.store, token, now, lease=lease, destinations=self._judged, probe=probe)
            if rows:
                rows = self._drop_silenced(rows, token, now)
            by_destination: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
            for row in rows:
                by_destination[row.destination][row.group_key].append(row)
            if by_destination:
                with self._renewing(token, clock, lease):
                    self._send_all(by_destination, token, clock)
            return len(rows)

    def _maintain(self, now: float) -> None:
        self._maintained_at = now
        outbox.expire(self.store, now)
        outbox.release_dead_leases(self.store, self._host, now, pid_alive)
        state.prune(self.store, now - max(self.group_interval, outbox.MAX_AGE_SECONDS))
        outbox.prune(self.store, now, self.settings.retention_seconds())
        for key, count in outbox.pending_by_destination(self.store, excluding=self._judged).items():
            self._say_left_alone(key, count, f"no channel {key!r} in this process's channel files "
                                             f"({self.settings.channels})")

    def _say_left_alone(self, key: str, count: int, why: str) -> None:
        """Log once per destination that its rows are left for another relay, and why."""
        if key in self._reported:
            return
        self._reported.add(key)
        logger.warning("alerts: %d pending delivery(ies) to %s left for a relay that can send them: %s "
                       "(unsent, they expire after %.0f h)", count, key, why, outbox.MAX_AGE_SECONDS / 3600)

    def _drop_silenced(self, rows: list, token: str, now: float) -> list:
        """Record the rows an active silence mutes as suppressed; return the others."""
        silences = silence.active(self.store, now)
        if not silences:
            return rows
        kept, muted = [], defaultdict(list)
        for row in rows:
            by = silence.muting(silences, json.loads(row.payload), now, recipient=row.user)
            if by is None:
                kept.append(row)
            else:
                muted[by.id].append(row.id)
        for silence_id, ids in muted.items():
            outbox.mark_suppressed(self.store, ids, token, f"silenced by #{silence_id}")
            self._count_silenced(rows, set(ids))
        return kept

    def _count_silenced(self, rows: list, ids: set) -> None:
        by_integration: dict[str, int] = defaultdict(int)
        for row in rows:
            if row.id in ids:
                by_integration[self._integration(row.destination)] += 1
        for integration, n in by_integration.items():
            self._failed(integration, "silenced", n)

    @contextmanager
    def _renewing(self, token: str, clock: Callable[[], float], lease: float) -> Iterator[None]:
        """Keep this pass's leases alive while it sends (a third of the lease apart), so that slow
        sends never let another relay take the same rows and send them again.

        One thread per relay does it for every pass, started at the first: starting a thread for
        each pass cost ~1 ms on the way of every alert."""
        current = (token, clock, lease)
        with self._renewal:
            if self._renewer is None or not self._renewer.is_alive():  # the first pass, or a forked child
                self._renewer = threading.Thread(target=self._renew_passes, name="alerts-relay-lease", daemon=True)
                self._renewer.start()
            self._renewing_pass = current
            self._renewal.notify_all()
        try:
            yield
        finally:
            with self._renewal:
                self._renewing_pass = None
                self._renewal.notify_all()

    def _renew_passes(self) -> None:
        """The renewal thread: while a pass sends, renew its leases every third of the lease."""
        with self._renewal:
            while True:
                current = self._renewing_pass
                if current is None:
                    if not self._renewal.wait(RENEWER_IDLE_EXIT) and self._renewing_pass is None:
                        self._renewer = None  # idle: the next pass starts a new one
                        return
                    continue
                token, clock, lease = current
                due = time.monotonic() + lease / 3
                while self._renewing_pass is current and time.monotonic() < due:
                    self._renewal.wait(max(0.0, due - time.monotonic()))
                if self._renewing_pass is not current:
                    continue  # that pass ended (or another began) before it needed renewing
                self._renewal.release()  # the pass may end meanwhile: a renewal then extends nothing
                try:
                    outbox.renew(self.store, token, clock() + lease)
                except Exception:
                    logger.exception("alerts: could not renew delivery leases")
                finally:
                    self._renewal.acquire()

    def _send_all(self, by_destination: dict, token: str, clock: Callable[[], float]) -> None:
        """Send to each destination; different destinations at once, up to MAX_PARALLEL_DESTINATIONS."""
        work = list(by_destination.items())
        if len(work) == 1:
            self._send_destination(*work[0], token, clock)
            return
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if not work:
                        return
                    key, groups = work.pop(0)
                try:
                    self._send_destination(key, groups, token, clock)
                except Exception:  # its rows keep their lease, then go to the next relay
                    logger.exception("alerts: the delivery relay failed for %s", key)

        threads = [threading.Thread(target=worker, name="alerts-relay-send", daemon=True)
                   for _ in range(min(MAX_PARALLEL_DESTINATIONS, len(work)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _sender(self, key: str, destination: Destination):
        sender = self._senders.get(key)
        if sender is None:
            sender = self._senders.setdefault(key, self._sender_factory(destination, self.settings))
            self._configs[key] = destination.config
        return sender

    def _send_destination(self, key: str, groups: dict, token: str, clock: Callable[[], float]) -> None:
        destination = self.channels.by_key(key)
        ids = [row.id for rows in groups.values() for row in rows]
        try:
            if destination is None:  # only if the channel set changed under us
                raise DeliveryError(f"no channel {key!r} in this process's channel files", recoverable=False)
            sender = self._sender(key, destination)
        except DeliveryError as exc:
            # Another process (other settings, another working directory) may send these: never
            # kill a row we cannot judge. Released as they were: no try counted.
            self._judged.discard(key)
            outbox.release(self.store, ids, token)
            self._say_left_alone(key, len(ids), str(exc))
            self._failed(self._integration(key), "misconfigured", len(ids))
            return
        wait_all: Optional[float] = None  # set when the destination or its user has no token left
        for group, rows in groups.items():
            group_ids = [row.id for row in rows]
            if wait_all is not None:
                outbox.defer(self.store, group_ids, token, wait_all)
                continue
            target = state.Target(key, destination.config.type, destination.user, group)
            answer = state.take(self.store, target, clock(), self.group_interval)
            if isinstance(answer, state.Later):
                outbox.defer(self.store, group_ids, token, answer.until)
                if not answer.group_only:
                    wait_all = answer.until
                continue
            # The group's rows still backing off (an outage) or waiting go in this message too:
            # otherwise each retry schedule that drifted apart would make a message of its own.
            rows = rows + outbox.claim_riders(self.store, token, key, group, clock(), self.lease)
            self._send_group(destination, sender, answer, rows, token, clock)

    def _send_group(self, destination: Destination, sender, grant: "state.Grant", rows: list, token: str,
                    clock: Callable[[], float]) -> None:
        ids = [row.id for row in rows]
        notifications = [Notification(**json.loads(row.payload)) for row in rows]
        kind = destination.config.type
        # What earlier messages of this incident carried: a follow-up counts all its runs. The first
        # message of a group (none sent since the state was pruned, a day at least) has none to read.
        earlier = [] if grant.previous is None else outbox.incident_so_far(self.store, destination.key,
                                                                              rows[0].group_key, clock())
        started = time.monotonic()  # how long the send takes (a duration, not a time: no clock)
        try:
            try:
                message_id = sender.send_group(notifications, earlier=earlier)
            except DeliveryError:
                raise
            except Exception as exc:  # a sender bug or an error not translated: retry, never lose the rows
                logger.exception("alerts: %s: unexpected error while sending", destination.label)
                raise DeliveryError(f"{type(exc).__name__}: {exc}", recoverable=True) from None
        except DeliveryError as exc:
            now = clock()
            # Nothing reached the user: the group is not "just sent", the tokens go back (a 429
            # pauses the destination for every relay instead).
            state.give_back(self.store, grant, now, retry_after=exc.retry_after)
            reason = "rate_limited" if exc.retry_after else ("retry" if exc.recoverable else "permanent")
            self._failed(kind, reason, duration=time.monotonic() - started)
            if not exc.recoverable:
                outbox.mark_dead(self.store, ids, token, str(exc))
                logger.warning("alerts: %s: giving up on %d alert(s): %s", destination.label, len(ids), exc)
                return
            wait = exc.retry_after if exc.retry_after is not None else outbox.backoff(max(r.attempts for r in rows))
            outbox.mark_retry(self.store, ids, token, now + wait, str(exc))
            return
        duration = time.monotonic() - started
        sent_at = clock()
        outbox.mark_sent(self.store, ids, token, sent_at, message_id)
        with self._counting:
            self.counters.sent(kind, [max(0.0, sent_at - n.created_at) for n in notifications], duration)

    def _failed(self, integration: str, reason: str, n: int = 1, duration: Optional[float] = None) -> None:
        with self._counting:
            self.counters.failed(integration, reason, n, duration)

    def _integration(self, key: str) -> str:
        """The channel type (slack, email) of a destination key, for the counters."""
        destination = self.channels.by_key(key)
        return destination.config.type if destination is not None else "unknown"

    def warm(self, users) -> None:
        """Build the senders of ``users``' destinations now (at ``init()``), not at their first alert.
        One that cannot be built is left to the pass that needs it, which records why."""
        with self._lock:
            for user in users:
                for destination in self.channels.of(user):
                    if destination.key not in self._senders:
                        try:
                            self._senders[destination.key] = self._sender_factory(destination, self.settings)
                            self._configs[destination.key] = destination.config
                        except Exception:
                            pass

    def connect(self, users, timeout: float = CONNECT_AHEAD_TIMEOUT) -> None:
        """Open the connections of ``users``' senders that keep one (Slack webhooks) now, at
        ``init()``, so that the first message does not wait for TCP and TLS. Best effort: one that
        does not open within ``timeout`` is opened by the first message."""
        for user in users:
            for destination in self.channels.of(user):
                sender = self._senders.get(destination.key)
                if hasattr(sender, "connect"):
                    try:
                        sender.connect(timeout)
                    except Exception:
                        logger.debug("alerts: could not connect ahead to %s", destination.label, exc_info=True)

    # -- the thread ---------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> "Relay":
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="alerts-relay", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop:
            woken = self._wake.wait(0.5)
            self._wake.clear()
            try:
                # Woken by a commit of outbox rows: they are due, claim them without looking first.
                if self.run_once(probe=not woken) and not self._stop:
                    while self.run_once() and not self._stop:
                        pass  # more may be due: a storm is claimed CLAIM_LIMIT rows at a time
                if self.on_idle is not None:
                    self.on_idle()
            except Exception:
                logger.exception("alerts: the delivery relay failed; will retry")
                time.sleep(1.0)

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def drain(self, timeout: float = 10.0) -> int:
        """At exit: send what falls due within ``timeout`` seconds; return how many rows this relay
        could send are still pending (the next relay sends them).

        Group intervals and rate limits are kept: with many processes on one store, waiving them at
        exit would make every exiting process send its own message. Rows waiting for their group
        stay pending.
        """
        self.stop()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.run_once()
            except Exception:
                logger.exception("alerts: the delivery relay failed at exit")
                break
            # Only rows that fall due before the deadline are worth waiting for.
            due_before = self._clock() + (deadline - time.monotonic())
            if not outbox.pending_count(self.store, due_before=due_before, destinations=self._judged):
                break
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return outbox.pending_count(self.store, destinations=self._judged)
