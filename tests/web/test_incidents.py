"""The inbox's incidents: alerts grouped as the notifications group them (key and gap)."""

from __future__ import annotations

from alerts.pipeline.incident import INCIDENT_GAP
from alerts.web import incidents


def alert(i: int, at: float, *, rule="loss-not-finite", project="vision", group=None, owner="alice", run="r1"):
    return {"id": i, "created_at": at, "rule": rule, "project": project, "run_group": group, "owner": owner,
            "run_name": f"{run}-name", "status": "firing"}


def test_alerts_of_one_rule_and_group_close_together_are_one_incident_counted_with_its_runs():
    rows = [alert(4, 1000.0, group="sweep-1", run="c"), alert(3, 990.0, group="sweep-1", run="b"),
            alert(2, 980.0, group="sweep-1", run="a"), alert(1, 970.0, group="sweep-1", run="a")]
    (only,) = incidents.group(rows)
    assert only.count == 4 and only.runs == ["a-name", "b-name", "c-name"] and only.newest["id"] == 4


def test_a_quiet_gap_starts_a_new_incident_and_other_keys_are_rows_of_their_own():
    rows = [alert(5, 10_000.0), alert(4, 9_990.0, project="audio"), alert(3, 9_980.0, rule=None),
            alert(2, 10_000.0 - INCIDENT_GAP + 1), alert(1, 10_001.0 - 2 * INCIDENT_GAP),
            alert(0, 9_000.0, owner="bob")]
    grouped = incidents.group(rows)
    assert [[a["id"] for a in i.alerts] for i in grouped] == [[5, 2], [4], [3], [1], [0]]


def test_incidents_near_the_end_of_a_page_are_marked_as_perhaps_going_on():
    grouped = incidents.group([alert(3, 5000.0), alert(2, 1000.0, project="audio"), alert(1, 900.0)])
    incidents.mark_continuing(grouped, page_oldest=900.0)
    assert [i.continues for i in grouped] == [False, True, True]
