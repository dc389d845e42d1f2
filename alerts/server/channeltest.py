"""A test message to a channel, sent at once (not through the outbox), as ``alerts notify test`` does.

What comes back says, per destination, whether it was sent and, if not, why: the channel's own
error text, which the channel modules already mask (``DeliveryError``), masked once more here for
errors no channel translated.
"""

from __future__ import annotations

import logging

from alerts import logredact
from alerts.channels.base import DeliveryError, Notification
from alerts.delivery.relay import make_sender
from alerts.settings import Settings

logger = logging.getLogger("alerts.server")


def notification_for_test(user: str, now: float) -> Notification:
    return Notification(title="Test notification from alerts", text=f"If you can read this, {user}'s channel works.",
                        level="INFO", run_id="test", run_name="test", project="alerts", owner=user, created_at=now)


def send_test(destinations: list, settings: Settings, user: str, now: float) -> list[dict]:
    """Send the test message to each destination; one result each (``ok``, ``error``, ``retryable``)."""
    note = notification_for_test(user, now)
    results = []
    for destination in destinations:
        try:
            make_sender(destination, settings).send_group([note])
        except DeliveryError as exc:
            results.append({"destination": destination.key, "ok": False, "error": str(exc),
                            "retryable": exc.recoverable})
        except Exception as exc:  # a sender bug: said, never a 500 that could carry the URL
            logger.exception("alerts: test message to %s failed", destination.key)
            results.append({"destination": destination.key, "ok": False,
                            "error": logredact.redact(f"{type(exc).__name__}: {exc}"), "retryable": None})
        else:
            results.append({"destination": destination.key, "ok": True})
    return results
