"""Finding crashed runs: still ``running`` in the store, but their process is gone.

A live run's writer updates its heartbeat every 10 s. A run whose heartbeat is older than
``CRASH_AFTER`` and whose process is not running (checked by pid when it ran on this host; by age
alone for other hosts) is marked ``crashed``, and the ``run_state`` rules for ``crashed`` fire for it.
Every logging process runs this check from its writer's tick (the embedded mode's scheduled check);
the conditional update makes sure exactly one process raises the alert.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from sqlalchemy import select, update

from alerts.processes import pid_alive
from alerts.rules.engine import RunRules
from alerts.rules.schema import RunInfo
from alerts.sdk.raising import rule_alert_op
from alerts.store import jsoncodec
from alerts.store.db import Store
from alerts.store.models import RunRecord

logger = logging.getLogger("alerts")

CRASH_AFTER = 120.0  # seconds without a heartbeat (they come every 10 s)
CHECK_EVERY = 30.0


def find_crashed(store: Store, now: float, host: str, is_alive: Callable[[int], bool] = pid_alive) -> list[RunRecord]:
    """Mark the runs that crashed as ``crashed``; return those this call marked."""
    query = select(RunRecord).where(RunRecord.state == "running", RunRecord.heartbeat_at < now - CRASH_AFTER)
    with store.engine.connect() as conn:
        candidates = [RunRecord.model_validate(row._mapping) for row in conn.execute(query).all()]
    marked = []
    for record in candidates:
        if record.host == host and record.pid is not None and is_alive(record.pid):
            continue  # its process is still there (stopped, or a writer stuck): not a crash yet
        with store.engine.begin() as conn:
            # Only the row as it was read: a process that resumed the run meanwhile (a new heartbeat) keeps it.
            result = conn.execute(update(RunRecord).where(RunRecord.id == record.id, RunRecord.state == "running",
                                                          RunRecord.heartbeat_at == record.heartbeat_at)
                                  .values(state="crashed", finished_at=now, updated_at=now,
                                          error_type="crashed", error_text=f"no heartbeat since {record.heartbeat_at:.0f}"))
        if result.rowcount:  # another process may have marked it first
            record.state = "crashed"
            marked.append(record)
    return marked


def raise_for_crashed(records: list[RunRecord], ruleset: Any, console: Any, channels: Any, now: float,
                      append: Callable[[tuple], None]) -> int:
    """Fire the ``crashed`` run-state rules for runs just marked crashed; returns how many alerts."""
    count = 0
    for record in records:
        info = RunInfo(id=record.id, name=record.name, project=record.project, owner=record.owner,
                       group=record.group, job_type=record.job_type, tags=tuple(jsoncodec.loads(record.tags) or ()))
        rules = RunRules(ruleset.plain_rules, info, start=record.created_at)
        rules.last_step = record.last_step
        for transition in rules.on_end("crashed", now, error="crashed"):
            try:
                append(rule_alert_op(transition, ruleset, console, channels))
                count += 1
            except Exception:
                logger.exception("alerts: could not raise the crash alert of run %s", record.id)
    return count
