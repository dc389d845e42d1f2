"""Routing: which users' channels an alert goes to, and the key that groups alerts into one message."""

from __future__ import annotations

import json
import uuid
from typing import Iterable, Optional

from alerts.channels.base import Notification
from alerts.channels.config import ChannelSet
from alerts.levels import LEVEL_ORDER


def recipients(owner: str, notify: Optional[Iterable[str]]) -> list[str]:
    """Users to notify: ``notify`` with ``owner`` standing for the run's owner; the owner by default."""
    users = [owner if u == "owner" else u for u in (notify or ["owner"])]
    return list(dict.fromkeys(u for u in users if u))


def group_key(n: Notification) -> str:
    """What one message gathers, per destination: the rule (or explicit alerts) and the run's group,
    or its project when it has none: a sweep whose runs fail together is one incident."""
    return f"{n.rule or 'alert'}|{n.run_group or n.project}"


def delivery_rows(n: Notification, channels: ChannelSet, users: list[str], now: float) -> tuple[str, list[dict]]:
    """The alert's uid and one outbox row per destination whose ``min_level`` the alert reaches."""
    uid = uuid.uuid4().hex
    rows = []
    payload = json.dumps(n.as_dict(), allow_nan=True, ensure_ascii=False)
    for user in users:
        for destination in channels.of(user):
            if LEVEL_ORDER[n.level] < LEVEL_ORDER[destination.config.min_level]:
                continue
            rows.append({"alert_uid": uid, "destination": destination.key, "user": user, "group_key": group_key(n),
                         "level": n.level, "payload": payload, "state": "pending", "attempts": 0,
                         "created_at": now, "next_attempt_at": now})
    return uid, rows
