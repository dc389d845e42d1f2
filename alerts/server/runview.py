"""What the runs pages show beside a run's own row: alert counts of a page of runs, the alerts of one
run (with the steps they fired at), its metric keys, and the thresholds the active rules set on them.

Read-only helpers over the store and the rule set; visibility is checked by the caller (a page of
runs is already the caller's; a run page checks the run first).
"""

from __future__ import annotations

import math
from typing import Iterable

from sqlalchemy import func, select

from alerts.rules.loader import RuleSet
from alerts.rules.schema import RunInfo, ThresholdRule
from alerts.store import jsoncodec
from alerts.store.db import Store
from alerts.store.models import AlertRecord, RunRecord

# The newest alerts of a run marked on its charts and listed on its page.
RUN_ALERTS_SHOWN = 500
# Metric keys offered on a run page (a run may log thousands).
MAX_KEYS_OFFERED = 500


def alert_counts(store: Store, run_ids: Iterable[str]) -> dict[str, int]:
    """How many alerts each run has (runs with none are left out)."""
    ids = list(run_ids)
    if not ids:
        return {}
    query = (select(AlertRecord.run_id, func.count()).where(AlertRecord.run_id.in_(ids))
             .group_by(AlertRecord.run_id))
    with store.engine.connect() as conn:
        return {run_id: count for run_id, count in conn.execute(query).all()}


def run_alerts(store: Store, run_id: str, limit: int = RUN_ALERTS_SHOWN) -> list[dict]:
    """The run's newest ``limit`` alerts, newest first."""
    query = (select(AlertRecord).where(AlertRecord.run_id == run_id).order_by(AlertRecord.id.desc()).limit(limit))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [AlertRecord.model_validate(row._mapping).model_dump() for row in rows]


def run_info(record: RunRecord) -> RunInfo:
    """What rules know of a run, for their ``runs:`` selectors."""
    return RunInfo(id=record.id, name=record.name, project=record.project, owner=record.owner, group=record.group,
                   job_type=record.job_type, tags=tuple(jsoncodec.loads(record.tags) or ()))


def _is_metric_value(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    # define_metric(summary="min,max") keeps {"min": ..., "max": ...} in the summary instead
    return isinstance(value, dict) and bool(value) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values())


def metric_keys(summary: dict, alerts: Iterable[dict] = ()) -> list[str]:
    """The keys a run logged numbers under, as its summary (each key's last value) shows them, plus the
    metrics its alerts were about; ``_step``-like keys left out."""
    keys = [key for key, value in summary.items() if not key.startswith("_") and _is_metric_value(value)]
    for alert in alerts:
        metric = alert.get("metric")
        if metric and metric not in keys:
            keys.append(metric)
    return keys[:MAX_KEYS_OFFERED]


def thresholds(ruleset: RuleSet, record: RunRecord, keys: Iterable[str]) -> dict[str, list[dict]]:
    """For each key, the thresholds of the active threshold rules that watch it in this run: rule name,
    comparison, value and level (``nan`` and ``non-finite`` conditions have no line to draw)."""
    info = run_info(record)
    rules = [rule for rule in ruleset.plain_rules if isinstance(rule, ThresholdRule)
             and rule.condition.threshold is not None and math.isfinite(rule.condition.threshold)
             and rule.applies_to(info)]
    out: dict[str, list[dict]] = {}
    for key in keys:
        lines = [{"rule": rule.name, "op": rule.condition.op, "value": rule.condition.threshold, "level": rule.level}
                 for rule in rules if rule.watches(key)]
        if lines:
            out[key] = lines
    return out


def default_keys(keys: list[str], watched: dict[str, list], alerts: Iterable[dict], at_most: int = 4) -> list[str]:
    """The charts a run page opens with: metrics alerts were about, then those rules watch, then losses,
    then the rest, at most ``at_most``."""
    alerted = [a.get("metric") for a in alerts]
    order = ([k for k in keys if k in alerted] + [k for k in keys if k in watched]
             + [k for k in keys if "loss" in k.lower()] + keys)
    return list(dict.fromkeys(order))[:at_most]


def chart_alerts(alerts: Iterable[dict]) -> list[dict]:
    """The alerts that fired at a step, as the chart marks them: on their metric's chart (on every chart
    when the alert names no metric: an explicit ``alert()`` call). A rule's resolution is not marked."""
    return [{"step": a["step"], "metric": a.get("metric"), "title": a["title"], "level": a["level"],
             "id": a["id"]} for a in alerts if a.get("step") is not None and a.get("status") != "resolved"]
