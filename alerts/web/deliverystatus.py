"""What a delivery's state means to the person reading the deliveries page: where it stands and why.

A row of the outbox says ``pending`` whether it is backing off after an error, waiting for its group's
next message, held by the channel's pace or simply due; the row's ``next_attempt_at`` and
``last_error``, with the group's last send (``delivery_state``), tell which. Pure: the caller reads
the rows and the groups' last sends (:func:`alerts.server.deliveryquery.groups_last_sent`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from alerts.web.render import environment

_when = environment.filters["when"]  # the pages' one way of writing a time

# A deferred row is due again at the group's last send + the interval; a little slack for the float
# arithmetic of the two clocks' readings.
_GROUP_SLACK_S = 1.0


@dataclass(frozen=True)
class Status:
    """A delivery's state as shown: a word (``label``, its CSS class ``css``) and why (``why``)."""

    label: str
    css: str
    why: str
    can_retry: bool = False


def describe(row: dict, *, now: float, group_last_sent: Optional[float], group_interval: float) -> Status:
    """The status of one delivery (a row as :func:`alerts.server.alertquery.delivery_view` gives it)."""
    state = row["state"]
    error = row.get("last_error")
    if state == "sent":
        why = f"sent {_when(row.get('sent_at'))} UTC"
        if row.get("carried_by") and row["carried_by"] != row["id"]:
            why += f", in one message with delivery #{row['carried_by']}"
        return Status("sent", "status-sent", why)
    if state == "dead":
        return Status("dead", "status-dead", f"gave up: {error or 'no reason recorded'}", can_retry=True)
    if state == "suppressed":
        return Status("silenced", "status-suppressed", f"not sent: {error or 'silenced'}")
    if state != "pending":
        return Status(state, "status-other", error or "")
    due = row["next_attempt_at"]
    if due <= now:
        tries = row.get("attempts") or 0
        after = f" (after {tries} failed {'try' if tries == 1 else 'tries'}: {error})" if error else ""
        return Status("pending", "status-pending", f"due now: the relay sends it at its next pass{after}")
    until = f"{_when(due)} UTC"
    if error:
        return Status("pending", "status-pending", f"backing off until {until} after \u201c{error}\u201d")
    if group_last_sent is not None and due <= group_last_sent + group_interval + _GROUP_SLACK_S:
        return Status("pending", "status-pending",
                      f"waiting for its group: a message of this group went at {_when(group_last_sent)} UTC; "
                      f"the next one goes at {until}")
    return Status("pending", "status-pending",
                  f"held back until {until} by the channel's pace or your hourly cap of messages")
