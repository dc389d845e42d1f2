"""Turning a notified alert into its records: the console line, the alert row, the outbox rows.

Shared by ``alert()`` and the rule transitions of a live embedded run (through the SDK's writer),
by the crash watchdog, and by the server for remote runs, so that every one of them records and
routes an alert the same way. Nothing here writes: callers commit the rows, the alert row and its
outbox rows in one transaction.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from alerts.channels.base import Notification
from alerts.pipeline.route import delivery_rows, recipients
from alerts.rules.templates import clip_text, clip_title, template_values
from alerts.store.models import alert_row

logger = logging.getLogger("alerts")


def console_notify(channel: Any, notification: Notification, reason: Optional[str]) -> tuple[str, Optional[str]]:
    """Print on the console channel; ``(outcome, reason)`` for the alert record. Never raises."""
    if channel is None:
        return "notified", reason
    try:
        channel.send(notification)
    except Exception as exc:  # alerting never breaks training: record the failure instead
        logger.warning("alerts: could not deliver alert %r: %s", notification.title, exc)
        return "failed", f"{type(exc).__name__}: {exc}"
    return "notified", reason


def deliveries_for(channels: Any, notification: Notification, notify: Optional[list]) -> tuple[Optional[str], list]:
    """The outbox rows for the users' configured channels (none when no channels are set up)."""
    if channels is None:
        return None, []
    return delivery_rows(notification, channels, recipients(notification.owner, notify), notification.created_at)


def rule_alert_rows(transition: Any, templates: Any, console: Any, channels: Any) -> tuple[dict, list]:
    """``(alert row, outbox rows)`` that record and route one rule transition. ``templates`` renders
    the rule's title and text (None: the rule's name, no text); ``console`` prints (None: nothing)."""
    rule, run = transition.rule, transition.run
    values = template_values(transition)
    loaded = templates.templates(rule.name) if templates is not None else None
    title = clip_title(loaded.title.render(values) if loaded is not None else rule.name)
    text = clip_text(loaded.text.render(values)) if loaded is not None else ""
    notification = Notification(
        title=title, text=text, level=rule.level, run_id=run.id, run_name=run.name, project=run.project,
        owner=run.owner, created_at=transition.at, source="rule", rule=rule.name, status=transition.status,
        metric=transition.metric, step=transition.step, run_group=run.group,
        value=float(transition.value) if isinstance(transition.value, (int, float)) else None,
    )
    uid, deliveries = None, []
    if transition.status == "resolved" and not rule.send_resolved:
        outcome, reason = "suppressed", "send_resolved is false"
    else:
        outcome, reason = console_notify(console, notification, None)
        uid, deliveries = deliveries_for(channels, notification, rule.notify)
    return alert_row(
        uid=uid, run_id=run.id, created_at=transition.at, source="rule", rule=rule.name, status=transition.status,
        metric=transition.metric, value=notification.value, title=title, text=text, level=rule.level,
        outcome=outcome, reason=reason, wait_duration=0.0, step=transition.step,
    ), deliveries
