"""The SDK's side of raising an alert: the writer operation that records one rule transition.

What an alert becomes (its row, its outbox rows, the console line) lives below the SDK, in
:mod:`alerts.pipeline.raising`, shared with the server; here it is only wrapped as an operation of
the background writer.
"""

from __future__ import annotations

from typing import Any

from alerts.pipeline.raising import console_notify, deliveries_for, rule_alert_rows
from alerts.sdk.worker import ALERT

__all__ = ["console_notify", "deliveries_for", "rule_alert_op"]


def rule_alert_op(transition: Any, templates: Any, console: Any, channels: Any) -> tuple:
    """The writer operation that records (and routes) one rule transition."""
    return (ALERT, *rule_alert_rows(transition, templates, console, channels))
