"""Finding crashed runs: still ``running`` in the store, but their process is gone.

A live run's writer updates its heartbeat every 10 s. A run whose heartbeat is older than
``CRASH_AFTER`` and whose process is not running (checked by pid when it ran on this host; by age
alone for other hosts) is marked ``crashed``, and the ``run_state`` rules for ``crashed`` fire for it.
Every logging process runs this check from its writer's tick (the embedded mode's scheduled check),
and so does the server (:func:`crash_and_alert`, a scheduled job); the conditional update makes sure
exactly one process raises the alert.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from sqlalchemy import insert, select, update

from alerts.processes import pid_alive
from alerts.rules.engine import RunRules
from alerts.rules.schema import RunInfo
from alerts.sdk.raising import rule_alert_op
from alerts.store import jsoncodec
from alerts.store.db import Store
from alerts.store.models import AlertRecord, DeliveryRecord, RunRecord

logger = logging.getLogger("alerts")

CRASH_AFTER = 120.0  # seconds without a heartbeat (they come every 10 s)
CHECK_EVERY = 30.0


def candidates(store: Store, now: float, host: str, is_alive: Callable[[int], bool] = pid_alive,
               after: float = CRASH_AFTER) -> list[RunRecord]:
    """Runs still ``running`` whose heartbeat is older than ``after`` and whose process is not known
    to run (on this host, by pid; from other hosts, by age alone)."""
    query = select(RunRecord).where(RunRecord.state == "running", RunRecord.heartbeat_at < now - after)
    with store.engine.connect() as conn:
        found = [RunRecord.model_validate(row._mapping) for row in conn.execute(query).all()]
    # A process still there (stopped, or a writer stuck) is not a crash yet.
    return [r for r in found if not (r.host == host and r.pid is not None and is_alive(r.pid))]


def _mark(conn: Any, record: RunRecord, now: float) -> bool:
    """Mark ``record``'s run crashed if its row is still as it was read; True if this call did."""
    # Only the row as it was read: a process that resumed the run meanwhile (a new heartbeat) keeps it,
    # and of two processes marking it at once, one does.
    result = conn.execute(update(RunRecord).where(RunRecord.id == record.id, RunRecord.state == "running",
                                                  RunRecord.heartbeat_at == record.heartbeat_at)
                          .values(state="crashed", finished_at=now, updated_at=now,
                                  error_type="crashed", error_text=f"no heartbeat since {record.heartbeat_at:.0f}"))
    return bool(result.rowcount)


def find_crashed(store: Store, now: float, host: str, is_alive: Callable[[int], bool] = pid_alive) -> list[RunRecord]:
    """Mark the runs that crashed as ``crashed``; return those this call marked."""
    marked = []
    for record in candidates(store, now, host, is_alive):
        with store.engine.begin() as conn:
            if _mark(conn, record, now):
                record.state = "crashed"
                marked.append(record)
    return marked


def crash_and_alert(store: Store, now: float, host: str, ruleset: Any, channels: Any,
                    is_alive: Callable[[int], bool] = pid_alive, after: float = CRASH_AFTER) -> list[tuple]:
    """The server's check: mark each crashed run and record the alerts of its ``crashed`` run-state
    rules, with their outbox rows, in the same transaction (a process killed in between loses
    neither half). Returns ``(run, alert rows)`` for each run this call marked."""
    done = []
    for record in candidates(store, now, host, is_alive, after):
        ops: list[tuple] = []
        raise_for_crashed([record.model_copy(update={"state": "crashed"})], ruleset, None, channels, now, ops.append)
        alerts = [op[1] for op in ops]
        deliveries = [d for op in ops for d in (op[2] or ())]
        for row in alerts + deliveries:
            jsoncodec.clean_columns(row)  # text no database stores (a lone surrogate) repaired, as the writer does
        with store.write_transaction() as conn:
            if not _mark(conn, record, now):
                continue  # another process marked it (and raised its alerts)
            if alerts:
                conn.execute(insert(AlertRecord), alerts)
            if deliveries:
                conn.execute(insert(DeliveryRecord), deliveries)
        done.append((record.model_copy(update={"state": "crashed"}), alerts))
    return done


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
