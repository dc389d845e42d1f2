"""Runs, alerts and deliveries written into a test's store the way the logging process writes them
(``Store.write_batch``; outbox rows by the router, :func:`alerts.pipeline.route.delivery_rows`)."""

from __future__ import annotations

import uuid
from typing import Optional

from alerts.channels.base import Notification
from alerts.pipeline.route import delivery_rows
from alerts.store.db import Batch
from alerts.store.models import alert_row


def add_run(store, run_id: str, owner: str, project: str = "vision", now: float = 1_700_000_000.0,
            group: Optional[str] = None) -> None:
    store.write_batch(Batch(runs=[{"id": run_id, "owner": owner, "project": project, "name": f"{run_id}-name",
                                   "group": group, "tags": "[]", "config": "{}", "summary": "{}", "state": "running",
                                   "created_at": now, "updated_at": now, "heartbeat_at": now, "last_step": -1}]))


def add_alert(store, run_id: str, owner: str, *, title: str = "loss is nan", level: str = "ERROR",
              rule: Optional[str] = "loss-not-finite", status: str = "firing", project: str = "vision",
              now: float = 1_700_000_000.0, channels=None, notify: Optional[list[str]] = None,
              value: Optional[float] = None) -> str:
    """An alert of run ``run_id`` and, given a channel set, its outbox rows to ``notify`` (default the
    owner), committed together as the writer does. Returns the alert's uid."""
    n = Notification(title=title, text=f"{title} (text)", level=level, run_id=run_id, run_name=f"{run_id}-name",
                     project=project, owner=owner, created_at=now, source="rule" if rule else "alert", rule=rule,
                     status=status, metric="loss" if rule else None, value=value)
    uid, rows = delivery_rows(n, channels, notify or [owner], now) if channels is not None else (uuid.uuid4().hex, [])
    store.write_batch(Batch(alerts=[alert_row(uid=uid, run_id=run_id, created_at=now, source=n.source, rule=rule,
                                              status=status, metric=n.metric, value=value, title=title, text=n.text,
                                              level=level, outcome="notified", wait_duration=60.0)],
                            deliveries=rows))
    return uid
