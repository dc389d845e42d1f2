"""The inbox's rows: alerts grouped into incidents the way the notifications grouped them.

The pipeline sends one message per destination and group key (:func:`alerts.pipeline.route.group_key`:
the rule, or explicit alerts, and the run's group, or its project), and a group's messages less than
:data:`~alerts.pipeline.incident.INCIDENT_GAP` apart are one incident. The inbox shows one row per
incident, with its count and its runs: alerts of one key (and one owner: an admin sees everyone's)
less than that gap apart, by the time they were raised. Alerts that no channel received (no channel
configured, or a level under every channel's ``min_level``) are grouped by the same rule, so the
inbox reads the same whether or not a message went out.

Pure: it takes the rows :func:`alerts.server.alertquery.list_alerts` returns, newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from alerts.pipeline.incident import INCIDENT_GAP
from alerts.pipeline.route import group_key


def key_of(alert: dict) -> str:
    """The incident key of an alert row: its owner and the pipeline's group key."""
    notification = SimpleNamespace(rule=alert.get("rule"), run_group=alert.get("run_group"),
                                   project=alert.get("project"))
    return f"{alert.get('owner')}|{group_key(notification)}"


@dataclass
class Incident:
    """One row of the inbox: an incident's alerts on this page, newest first."""

    key: str
    alerts: list[dict] = field(default_factory=list)
    continues: bool = False  # it may go on into older alerts, on the next page

    @property
    def newest(self) -> dict:
        return self.alerts[0]

    @property
    def oldest(self) -> dict:
        return self.alerts[-1]

    @property
    def count(self) -> int:
        return len(self.alerts)

    @property
    def runs(self) -> list[str]:
        """The run names, each once, first alerted first (as the notification lists them)."""
        return list(dict.fromkeys(a["run_name"] for a in reversed(self.alerts)))

    @property
    def firing(self) -> bool:
        """Its newest alert fires (a rule's later ``resolved`` alert ends the incident's firing)."""
        return self.newest.get("status") != "resolved"


def group(alerts: list[dict], gap: float = INCIDENT_GAP) -> list[Incident]:
    """``alerts`` (newest first) as incidents, newest first: each alert joins the open incident of its
    key when it was raised less than ``gap`` seconds before that incident's oldest alert."""
    incidents: list[Incident] = []
    open_by_key: dict[str, Incident] = {}
    for alert in alerts:
        key = key_of(alert)
        current = open_by_key.get(key)
        if current is None or current.oldest["created_at"] - alert["created_at"] >= gap:
            current = open_by_key[key] = Incident(key)
            incidents.append(current)
        current.alerts.append(alert)
    return incidents


def mark_continuing(incidents: list[Incident], page_oldest: float, gap: float = INCIDENT_GAP) -> None:
    """On a page that is not the last: the incidents that may continue with alerts on the next page
    (their oldest alert is within ``gap`` of the page's oldest) have a count that is at least so."""
    for incident in incidents:
        incident.continues = incident.oldest["created_at"] - page_oldest < gap
