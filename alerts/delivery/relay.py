"""The relay: claims due outbox rows, groups them, paces them, sends them, records the outcome.

One message per (destination, group): the first alert of a group goes at once; alerts of the same
group that come within ``group_interval`` of a message wait and go together in the next one, as
"+N more". Each destination has a token bucket (Slack about one message a second); rows that find
it empty wait and fold into the next message instead of being rejected by Slack.

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
from typing import Callable, Optional

from alerts import clock as _clock
from alerts.channels.base import DeliveryError, Notification
from alerts.channels.config import ChannelSet, Destination, SlackChannel
# Imported with the relay, not at the first send: that may be at interpreter exit, when Python
# refuses what these imports set up (concurrent.futures' exit hook).
from alerts.channels.email import EmailSender
from alerts.channels.slack import SlackApi, SlackWebhook
from alerts.delivery import outbox
from alerts.pipeline import silence
from alerts.pipeline.ratelimit import TokenBucket, bucket_for, user_bucket
from alerts.settings import Settings
from alerts.store.db import Store

logger = logging.getLogger("alerts")

GROUP_INTERVAL = 30.0  # seconds between two messages of one group to one destination
MAINTENANCE_EVERY = 15.0  # seconds between sweeps for expired rows and dead processes' leases


@dataclass
class Counters:
    """Alertmanager-style counters, for the server's /metrics."""

    notifications_total: dict = field(default_factory=lambda: defaultdict(int))  # by channel type
    notifications_failed_total: dict = field(default_factory=lambda: defaultdict(int))  # by reason
    alerts_delivered_total: int = 0  # alerts carried by the sent messages
    latencies: list = field(default_factory=list)  # seconds from the alert to its message, last 1000

    def observe_latency(self, seconds: float) -> None:
        self.latencies.append(seconds)
        del self.latencies[:-1000]


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


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class Relay:
    """Empties the outbox of one store into the channels of a :class:`ChannelSet`."""

    def __init__(self, store: Store, channels: ChannelSet, settings: Settings,
                 clock: Optional[Callable[[], float]] = None, group_interval: float = GROUP_INTERVAL,
                 sender_factory: Callable = make_sender) -> None:
        self.store = store
        self.channels = channels
        self.settings = settings
        self.group_interval = group_interval
        self._clock = clock if clock is not None else _clock.now
        self._sender_factory = sender_factory
        self._senders: dict[str, object] = {}
        self._buckets: dict[str, TokenBucket] = {}  # per destination
        self._user_buckets: dict[str, TokenBucket] = {}  # per user, over all their destinations
        self._last_sent: dict[tuple[str, str], float] = {}
        self._host = socket.gethostname()
        self._tag = uuid.uuid4().hex[:6]
        self._claims = 0
        self._maintained_at = float("-inf")  # the first pass frees dead leases and expires old rows
        self.counters = Counters()
        self._wake = threading.Event()
        self._stop = False
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()  # one pass at a time (the thread, or a drain at exit)
        self.on_idle: Optional[Callable[[], None]] = None  # called when the thread has nothing due left

    # -- one pass -----------------------------------------------------------------------------------

    def run_once(self, now: Optional[float] = None, final: bool = False) -> int:
        """Claim what is due at ``now`` and send it; return how many rows were claimed.

        ``final`` (at exit) sends groups without waiting for their group interval.
        """
        with self._lock:
            now = self._clock() if now is None else now
            if final or now - self._maintained_at >= MAINTENANCE_EVERY:
                # Not on every pass: two transactions that would sit on the path of each alert.
                self._maintained_at = now
                outbox.expire(self.store, now)
                outbox.release_dead_leases(self.store, self._host, now, _pid_alive)
            self._claims += 1
            token = outbox.owner_name(self._host, os.getpid(), f"{self._tag}-{self._claims}")
            rows = outbox.claim(self.store, token, now)
            if rows:
                rows = self._drop_silenced(rows, token, now)
            by_destination: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
            for row in rows:
                by_destination[row.destination][row.group_key].append(row)
            for key, groups in by_destination.items():
                self._send_destination(key, groups, token, now, final)
            return len(rows)

    def _drop_silenced(self, rows: list, token: str, now: float) -> list:
        """Record the rows an active silence mutes as suppressed; return the others."""
        silences = silence.active(self.store, now)
        if not silences:
            return rows
        kept, muted = [], defaultdict(list)
        for row in rows:
            by = silence.muting(silences, json.loads(row.payload), now)
            if by is None:
                kept.append(row)
            else:
                muted[by.id].append(row.id)
        for silence_id, ids in muted.items():
            outbox.mark_suppressed(self.store, ids, token, f"silenced by #{silence_id}")
            self.counters.notifications_failed_total["silenced"] += len(ids)
        return kept

    def _send_destination(self, key: str, groups: dict, token: str, now: float, final: bool) -> None:
        destination = self.channels.by_key(key)
        ids = [row.id for rows in groups.values() for row in rows]
        if destination is None:
            outbox.mark_dead(self.store, ids, token, f"no channel {key!r} in the channel files any more")
            self.counters.notifications_failed_total["no_channel"] += 1
            return
        try:
            sender = self._senders.get(key) or self._senders.setdefault(key, self._sender_factory(destination, self.settings))
        except DeliveryError as exc:
            outbox.mark_dead(self.store, ids, token, str(exc))
            self.counters.notifications_failed_total["misconfigured"] += 1
            return
        bucket = self._buckets.setdefault(key, bucket_for(destination.config.type))
        per_user = self._user_buckets.setdefault(destination.user, user_bucket())
        for group, rows in groups.items():
            group_ids = [row.id for row in rows]
            last = self._last_sent.get((key, group))
            if not final and last is not None and now - last < self.group_interval:
                outbox.defer(self.store, group_ids, token, last + self.group_interval)
                continue
            if not (bucket.ready(now) and per_user.ready(now)):
                outbox.defer(self.store, group_ids, token, max(bucket.next_at(now), per_user.next_at(now)))
                continue
            bucket.take(now)
            per_user.take(now)
            self._send_group(destination, sender, bucket, group, rows, token, now)

    def _send_group(self, destination: Destination, sender, bucket: TokenBucket, group: str, rows: list,
                    token: str, now: float) -> None:
        ids = [row.id for row in rows]
        notifications = [Notification(**json.loads(row.payload)) for row in rows]
        kind = destination.config.type
        try:
            try:
                message_id = sender.send_group(notifications)
            except DeliveryError:
                raise
            except Exception as exc:  # a sender bug or an error not translated: retry, never lose the rows
                logger.exception("alerts: %s: unexpected error while sending", destination.label)
                raise DeliveryError(f"{type(exc).__name__}: {exc}", recoverable=True) from None
        except DeliveryError as exc:
            reason = "rate_limited" if exc.retry_after else ("retry" if exc.recoverable else "permanent")
            self.counters.notifications_failed_total[reason] += 1
            if not exc.recoverable:
                outbox.mark_dead(self.store, ids, token, str(exc))
                logger.warning("alerts: %s: giving up on %d alert(s): %s", destination.label, len(ids), exc)
                return
            wait = exc.retry_after if exc.retry_after is not None else outbox.backoff(max(r.attempts for r in rows))
            if exc.retry_after:  # Slack said when: nothing goes to this destination before then
                bucket.pause_until(now + exc.retry_after)
            outbox.mark_retry(self.store, ids, token, now + wait, str(exc))
            return
        sent_at = self._clock()
        outbox.mark_sent(self.store, ids, token, sent_at, message_id)
        self._last_sent[(destination.key, group)] = now
        self.counters.notifications_total[kind] += 1
        self.counters.alerts_delivered_total += len(ids)
        for n in notifications:
            self.counters.observe_latency(max(0.0, sent_at - n.created_at))

    def warm(self, users) -> None:
        """Build the senders of ``users``' destinations now (at ``init()``), not at their first alert.
        One that cannot be built is left to the pass that needs it, which records why."""
        with self._lock:
            for user in users:
                for destination in self.channels.of(user):
                    if destination.key not in self._senders:
                        try:
                            self._senders[destination.key] = self._sender_factory(destination, self.settings)
                        except Exception:
                            pass

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
            self._wake.wait(0.5)
            self._wake.clear()
            try:
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
        """At exit: send what is pending (group intervals waived, rate limits kept) for up to
        ``timeout`` seconds; return how many rows are still pending (the next process relays them)."""
        self.stop()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.run_once(final=True)
            except Exception:
                logger.exception("alerts: the delivery relay failed at exit")
                break
            # Only rows that fall due before the deadline are worth waiting for.
            if not outbox.pending_count(self.store, due_before=self._clock() + (deadline - time.monotonic())):
                break
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return outbox.pending_count(self.store)
