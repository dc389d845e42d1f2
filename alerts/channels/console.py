"""The console channel: one line on stderr per notification."""

from __future__ import annotations

import sys
from typing import Optional, TextIO

from alerts.channels.base import Notification


def one_line(text: str) -> str:
    """Whitespace (newlines included) collapsed, so a notification is always one line."""
    return " ".join(str(text).split())


class ConsoleChannel:
    """Prints ``alerts: [LEVEL] title: text (run NAME in PROJECT)`` to a stream (stderr)."""

    name = "console"

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self._stream = stream

    def send(self, notification: Notification) -> None:
        stream = self._stream or sys.stderr
        text = one_line(notification.text)
        resolved = "RESOLVED " if notification.status == "resolved" else ""
        line = f"alerts: [{notification.level}] {resolved}{one_line(notification.title)}"
        if text:
            line += f": {text}"
        line += f" (run {notification.run_name} in {notification.project})"
        stream.write(line + "\n")
        stream.flush()
