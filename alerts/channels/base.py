"""What every channel shares: the notification it is handed and the one error it may raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol


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


class DeliveryError(Exception):
    """A send failed. ``recoverable`` says whether to retry; ``retry_after`` how long to wait (s)."""

    def __init__(self, message: str, recoverable: bool, retry_after: Optional[float] = None) -> None:
        super().__init__(message)
        self.recoverable = recoverable
        self.retry_after = retry_after


class Channel(Protocol):
    """A destination for notifications."""

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver, or raise :class:`DeliveryError`."""
