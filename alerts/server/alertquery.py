"""Reading alerts for the API: filters, visibility (the run's owner, or an admin), keyset pages.

An alert belongs to its run's owner. Lists are newest first by id; the page's cursor is the last id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import select

from alerts.server.accounts import Principal
from alerts.store.db import Store
from alerts.store.models import AlertRecord, DeliveryRecord, RunRecord


@dataclass(frozen=True)
class AlertFilter:
    """What to list; None leaves a filter out. ``since``/``until``: created at or after / before."""

    project: Optional[str] = None
    group: Optional[str] = None  # the run's group
    run: Optional[str] = None
    rule: Optional[str] = None
    level: Optional[str] = None
    status: Optional[str] = None
    source: Optional[str] = None
    outcome: Optional[str] = None
    owner: Optional[str] = None
    since: Optional[float] = None
    until: Optional[float] = None


def _visible(query, caller: Principal, owner: Optional[str], sqlite: bool = False):
    # On SQLite, ``owner || ''`` keeps the planner off ``ix_runs_owner``: with it, SQLite reads every
    # alert of the user through ``ix_alerts_run_id`` and sorts them (90,000 alerts filtered by rule:
    # ~190 ms); without it, it walks the alerts' primary key backwards and stops at the page's end
    # (under 1 ms; a filter nothing matches reads the table once, ~15 ms at 100,000). PostgreSQL
    # takes that plan by itself (a backward scan of alerts_pkey, runs by their key).
    column = RunRecord.owner.concat("") if sqlite else RunRecord.owner
    if not caller.is_admin:
        # Another user's runs (``owner=bob`` from alice): none, as if bob had no alerts.
        return query.where(column == caller.name, column == (owner or caller.name))
    if owner is not None:
        return query.where(column == owner)
    return query


# An alert's columns and its run's identity: only the four run columns the views show (not its config,
# summary or notes), read as plain rows (validating ORM models costs ~0.5 ms a row, the query far less).
_COLUMNS = (*AlertRecord.__table__.columns, RunRecord.project, RunRecord.name.label("run_name"), RunRecord.owner,
            RunRecord.group.label("run_group"))


def _row(row) -> dict:
    return dict(row._mapping)


def page_ids_query(store: Store, caller: Principal, f: AlertFilter, limit: int, after: Optional[int]):
    """The query of a page's alert ids (the first step of :func:`list_alerts`; its plan is the list's)."""
    query = select(AlertRecord.id).join(RunRecord, RunRecord.id == AlertRecord.run_id)
    query = _visible(query, caller, f.owner, sqlite=store.engine.dialect.name == "sqlite")
    conditions = {
        RunRecord.project: f.project, RunRecord.group: f.group, AlertRecord.run_id: f.run, AlertRecord.rule: f.rule,
        AlertRecord.level: f.level, AlertRecord.status: f.status, AlertRecord.source: f.source,
        AlertRecord.outcome: f.outcome,
    }
    for column, value in conditions.items():
        if value is not None:
            query = query.where(column == value)
    if f.since is not None:
        query = query.where(AlertRecord.created_at >= f.since)
    if f.until is not None:
        query = query.where(AlertRecord.created_at < f.until)
    if after is not None:
        query = query.where(AlertRecord.id < after)
    return query.order_by(AlertRecord.id.desc()).limit(limit + 1)


def list_alerts(store: Store, caller: Principal, f: AlertFilter, limit: int, after: Optional[int]) -> list[dict]:
    """Up to ``limit + 1`` alerts the caller may see, matching ``f``, newest first, ids below ``after``.

    Two steps: the page's ids first, then their rows. The first query reads only ids and keys (an index
    scan: the primary key backwards), so nothing wide is read or sorted for rows that are not shown.
    """
    with store.engine.connect() as conn:
        ids = conn.execute(page_ids_query(store, caller, f, limit, after)).scalars().all()
        if not ids:
            return []
        rows = conn.execute(select(*_COLUMNS).join(RunRecord, RunRecord.id == AlertRecord.run_id)
                            .where(AlertRecord.id.in_(ids)).order_by(AlertRecord.id.desc())).all()
    return [_row(r) for r in rows]


def get_alert(store: Store, alert_id: int) -> Optional[dict]:
    """One alert with its run's identity, or None."""
    query = select(*_COLUMNS).join(RunRecord, RunRecord.id == AlertRecord.run_id).where(AlertRecord.id == alert_id)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else _row(row)


def deliveries_of(store: Store, uid: Optional[str], caller: Principal) -> list[dict]:
    """The deliveries of an alert the caller may see (theirs; an admin: all), oldest first."""
    if not uid:
        return []
    query = select(DeliveryRecord).where(DeliveryRecord.alert_uid == uid).order_by(DeliveryRecord.id)
    if not caller.is_admin:
        query = query.where(DeliveryRecord.user == caller.name)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [delivery_view(DeliveryRecord.model_validate(row._mapping)) for row in rows]


def delivery_view(record: DeliveryRecord) -> dict:
    """A delivery as the API shows it: its row without the payload, plus the alert's title and run."""
    data = record.model_dump(exclude={"payload", "lease_owner", "lease_until"})
    try:
        payload = json.loads(record.payload)
    except ValueError:
        payload = {}
    data["title"] = payload.get("title")
    data["run_id"] = payload.get("run_id")
    data["project"] = payload.get("project")
    return data
