"""The server's Prometheus metrics, served at ``/metrics``.

Names follow Alertmanager's where the meaning is the same (``alertmanager_notifications_total`` becomes
``alerts_notifications_total``):

* ``alerts_notifications_total{integration}``: messages attempted (sent, or failed while sending);
* ``alerts_notifications_failed_total{integration,reason}``: ``retry`` (a 5xx, a timeout: retried),
  ``rate_limited`` (a 429), ``permanent`` (dead), ``misconfigured`` (no sender could be built, nothing
  attempted);
* ``alerts_notification_latency_seconds{integration}``: how long a send took (Alertmanager's meaning);
* ``alerts_notification_delay_seconds{integration}``: from an alert being raised to its message going;
* ``alerts_notifications_silenced_total{integration}``: deliveries a silence muted;
* ``alerts_ingest_points_total``, ``alerts_ingest_batches_total``, ``alerts_ingest_alerts_total``,
  ``alerts_ingest_replayed_batches_total``: what the API stored (the ingest routes call
  :meth:`ServerMetrics.ingested`);
* ``alerts_job_runs_total{job,outcome}``, ``alerts_job_leader{job}``,
  ``alerts_job_last_success_timestamp_seconds{job}``: the scheduled jobs (``alerts/server/jobs.py``);
* read from the store at each scrape: ``alerts_outbox_rows{state}``,
  ``alerts_outbox_oldest_pending_age_seconds``, ``alerts_runs_live`` (running, heartbeat fresh);
* the process's own (``process_resident_memory_bytes``, ...).

Each app has a registry of its own (not prometheus_client's global one), so that several apps in one
process (tests) count apart. Every replica reports the store's gauges; they are the same numbers.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from alerts.delivery.relay import Counters
from alerts.sdk.crashes import CRASH_AFTER
from alerts.store.db import Store
from alerts.store.models import DeliveryRecord, RunRecord

logger = logging.getLogger("alerts.server")

# Sends take milliseconds to a few seconds (a slow SMTP server: the client's 15 s timeout).
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Raising to sending: at once, or a group interval (30 s), pacing, an outage's backoff (minutes).
DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)
OUTBOX_STATES = ("pending", "sent", "dead", "suppressed")


class ServerMetrics:
    """The app's counters and histograms, and the collector of the store's gauges."""

    def __init__(self, store_of: Callable[[], Optional[Store]], clock: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.notifications = Counter("alerts_notifications", "Messages attempted (sent or failed while sending).",
                                     ["integration"], registry=r)
        self.notifications_failed = Counter("alerts_notifications_failed", "Notifications that did not go.",
                                            ["integration", "reason"], registry=r)
        self.notifications_silenced = Counter("alerts_notifications_silenced", "Deliveries muted by a silence.",
                                              ["integration"], registry=r)
        self.notification_latency = Histogram("alerts_notification_latency_seconds", "How long a send took.",
                                              ["integration"], buckets=SEND_BUCKETS, registry=r)
        self.notification_delay = Histogram("alerts_notification_delay_seconds",
                                            "From an alert being raised to its message being sent.",
                                            ["integration"], buckets=DELAY_BUCKETS, registry=r)
        self.alerts_delivered = Counter("alerts_alerts_delivered", "Alerts carried by sent messages.", registry=r)
        self.ingest_points = Counter("alerts_ingest_points", "History points stored through the API.", registry=r)
        self.ingest_batches = Counter("alerts_ingest_batches", "Batches stored through the API.", registry=r)
        self.ingest_replayed = Counter("alerts_ingest_replayed_batches",
                                       "Batches received again (a retry or a spool replay) and not stored twice.",
                                       registry=r)
        self.ingest_alerts = Counter("alerts_ingest_alerts", "Alerts recorded from the API's batches.", registry=r)
        self.job_runs = Counter("alerts_job_runs", "Scheduled job runs: ran, skipped (another replica holds "
                                "its lease) or failed.", ["job", "outcome"], registry=r)
        self.job_leader = Gauge("alerts_job_leader", "1 while this replica holds the job's lease.", ["job"],
                                registry=r)
        self.job_last_success = Gauge("alerts_job_last_success_timestamp_seconds",
                                      "When the job last ran to the end on this replica.", ["job"], registry=r)
        r.register(_StoreGauges(store_of, clock))
        ProcessCollector(registry=r)

    def ingested(self, points: int = 0, batches: int = 0, alerts: int = 0, replayed: int = 0) -> None:
        """Count what an ingest request stored (for the rates: ``rate(alerts_ingest_points_total[1m])``)."""
        if points:
            self.ingest_points.inc(points)
        if batches:
            self.ingest_batches.inc(batches)
        if alerts:
            self.ingest_alerts.inc(alerts)
        if replayed:
            self.ingest_replayed.inc(replayed)

    def relay_counters(self) -> "RelayCounters":
        """Counters for a :class:`~alerts.delivery.relay.Relay` that also feed these metrics."""
        return RelayCounters(self)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class RelayCounters(Counters):
    """The relay's counters, mirrored into the app's Prometheus metrics."""

    def __init__(self, metrics: ServerMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def sent(self, integration: str, delays: list, duration: float) -> None:
        super().sent(integration, delays, duration)
        m = self._metrics
        m.notifications.labels(integration).inc()
        m.notification_latency.labels(integration).observe(duration)
        m.alerts_delivered.inc(len(delays))
        for delay in delays:
            m.notification_delay.labels(integration).observe(delay)

    def failed(self, integration: str, reason: str, n: int = 1, duration: Optional[float] = None) -> None:
        super().failed(integration, reason, n, duration)
        m = self._metrics
        if reason == "silenced":  # muted on purpose: not a failure
            m.notifications_silenced.labels(integration).inc(n)
            return
        m.notifications_failed.labels(integration, reason).inc(n)
        if duration is not None:  # an attempt was made
            m.notifications.labels(integration).inc()
            m.notification_latency.labels(integration).observe(duration)


class _StoreGauges:
    """Gauges read from the store at each scrape: outbox rows by state, the oldest pending row's age,
    live runs. A store that does not answer leaves them out of that scrape (logged), never fails it."""

    def __init__(self, store_of: Callable[[], Optional[Store]], clock: Callable[[], float]) -> None:
        self._store_of = store_of
        self._clock = clock

    def describe(self):
        return []  # read at scrape time only (registering must not query the store)

    def collect(self):
        store = self._store_of()
        if store is None:
            return
        now = self._clock()
        try:
            with store.engine.connect() as conn:
                by_state = dict(conn.execute(select(DeliveryRecord.state, func.count())
                                             .group_by(DeliveryRecord.state)).all())
                oldest = conn.execute(select(func.min(DeliveryRecord.created_at))
                                      .where(DeliveryRecord.state == "pending")).scalar_one()
                live = conn.execute(select(func.count()).select_from(RunRecord)
                                    .where(RunRecord.state == "running",
                                           RunRecord.heartbeat_at >= now - CRASH_AFTER)).scalar_one()
        except Exception as exc:  # the reason, never the URL (it may hold a password)
            logger.warning("alerts: /metrics: the store did not answer (%s); its gauges are left out",
                           type(exc).__name__)
            return
        rows = GaugeMetricFamily("alerts_outbox_rows", "Outbox rows by state (pending: not sent yet).",
                                 labels=["state"])
        for state in OUTBOX_STATES:
            rows.add_metric([state], float(by_state.get(state, 0)))
        yield rows
        yield GaugeMetricFamily("alerts_outbox_oldest_pending_age_seconds",
                                "Age of the oldest pending outbox row (0: none pending).",
                                value=max(0.0, now - oldest) if oldest is not None else 0.0)
        yield GaugeMetricFamily("alerts_runs_live", "Runs in state running whose heartbeat is fresh.",
                                value=float(live))
