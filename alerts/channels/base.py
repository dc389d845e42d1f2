"""What every channel shares: the notification it is handed and the one error it may raise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Protocol, Sequence

from alerts.logredact import redact


def format_value(value: Optional[float]) -> str:
    """A metric value as messages show it: 6 significant digits, ``nan``/``inf`` as such, ``-`` for none."""
    if value is None:
        return "-"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:.6g}"


@dataclass(frozen=True)
class Notification:
    """One alert, as a channel shows it."""

    title: str
    text: str
    level: str
    run_id: str
    run_name: str
    project: str
    owner: str
    created_at: float
    source: str = "alert"
    rule: Optional[str] = None
    status: str = "firing"  # firing | resolved
    metric: Optional[str] = None
    value: Optional[float] = None
    step: Optional[int] = None
    run_group: Optional[str] = None

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class DeliveryError(Exception):
    """A send failed. ``recoverable`` says whether to retry; ``retry_after`` how long to wait (s).

    Every library error (slack_sdk's, aiosmtplib's, the network's) is translated into this in the
    channel modules, and only there: the relay sees nothing else. The message is what the outbox
    records (``last_error``) and ``alerts deliveries`` prints, so known secrets are masked in it.
    """

    def __init__(self, message: str, recoverable: bool, retry_after: Optional[float] = None) -> None:
        super().__init__(redact(message))
        self.recoverable = recoverable
        self.retry_after = retry_after


class Channel(Protocol):
    """A destination for notifications."""

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver, or raise :class:`DeliveryError`."""


class GroupSender(Protocol):
    """A destination that sends one message for a group of notifications (Slack, email)."""

    def send_group(self, notifications: list[Notification], earlier: Sequence[Notification] = ()) -> Optional[str]:
        """Deliver one message for all of ``notifications`` (a message id if the service gives one),
        or raise :class:`DeliveryError`. ``earlier``: the alerts of the same incident that the group's
        previous messages carried, for the message to count (``alerts.pipeline.incident``)."""
