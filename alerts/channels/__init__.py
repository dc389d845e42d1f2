"""Where notifications go. Until Slack and email land, the console channel prints to stderr."""

from alerts.channels.base import Channel, DeliveryError, Notification
from alerts.channels.console import ConsoleChannel

__all__ = ["Channel", "DeliveryError", "Notification", "ConsoleChannel"]
