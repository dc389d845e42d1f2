"""``/api/v1/alerts``: the alerts of the caller's runs (an admin: everyone's), filtered and paged."""

from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from alerts.server import alertquery
from alerts.server.accounts import Principal
from alerts.server.auth import current_user, require_visible
from alerts.server.encoding import NonFiniteFloat
from alerts.server.pagination import Page, PageParams, page_of, page_params

router = APIRouter(tags=["alerts"])


class DeliveryOut(BaseModel):
    id: int
    alert_uid: str
    destination: str
    user: str
    group_key: str
    level: str
    state: str
    attempts: int
    created_at: float
    next_attempt_at: float
    sent_at: Optional[float] = None
    carried_by: Optional[int] = None
    message_id: Optional[str] = None
    last_error: Optional[str] = None
    title: Optional[str] = None
    run_id: Optional[str] = None
    project: Optional[str] = None


class AlertOut(BaseModel):
    id: int
    uid: Optional[str] = None
    run_id: str
    run_name: str
    project: str
    owner: str
    run_group: Optional[str] = None
    created_at: float
    source: str
    rule: Optional[str] = None
    status: str
    metric: Optional[str] = None
    value: Optional[NonFiniteFloat] = None
    step: Optional[int] = None
    title: str
    text: str
    level: str
    outcome: str
    reason: Optional[str] = None
    wait_duration: float


class AlertDetail(AlertOut):
    deliveries: list[DeliveryOut]


def id_after(params: PageParams) -> Optional[int]:
    if params.after is None:
        return None
    if not isinstance(params.after, int) or isinstance(params.after, bool):
        raise HTTPException(400, "cursor: not a cursor of this list (use next_cursor as given)")
    return params.after


Text = Query(None, min_length=1, max_length=256)


@router.get("/alerts", response_model=Page[AlertOut], summary="Alerts of your runs, newest first")
def list_alerts(
    request: Request,
    project: Optional[str] = Text,
    group: Optional[str] = Query(None, min_length=1, max_length=256, description="the run's group"),
    run: Optional[str] = Query(None, min_length=1, max_length=64, description="run id"),
    rule: Optional[str] = Query(None, min_length=1, max_length=256, description="rule name (explicit alert() calls have none: use source=alert)"),
    level: Optional[Literal["INFO", "WARN", "ERROR"]] = None,
    status: Optional[Literal["firing", "resolved"]] = None,
    source: Optional[Literal["alert", "rule"]] = Query(None, description="alert: explicit alert() calls; rule: raised by a rule"),
    outcome: Optional[Literal["notified", "suppressed", "failed"]] = None,
    owner: Optional[str] = Query(None, min_length=1, max_length=64, description="admins: whose runs"),
    since: Optional[float] = Query(None, allow_inf_nan=False, description="created at or after (seconds since the epoch)"),
    until: Optional[float] = Query(None, allow_inf_nan=False, description="created before (seconds since the epoch)"),
    page: PageParams = Depends(page_params),
    caller: Principal = Depends(current_user),
) -> Page[AlertOut]:
    filters = alertquery.AlertFilter(project=project, group=group, run=run, rule=rule, level=level, status=status, source=source,
                                     outcome=outcome, owner=owner, since=since, until=until)
    rows = alertquery.list_alerts(request.app.state.store, caller, filters, page.limit, id_after(page))
    items, cursor = page_of(rows, page.limit, lambda row: row["id"])
    return Page[AlertOut](items=[AlertOut(**row) for row in items], next_cursor=cursor)


@router.get("/alerts/{alert_id}", response_model=AlertDetail, summary="One alert, with its deliveries to you")
def get_alert(request: Request, alert_id: int, caller: Principal = Depends(current_user)) -> AlertDetail:
    store = request.app.state.store
    row = alertquery.get_alert(store, alert_id) if -2**63 <= alert_id < 2**63 else None
    require_visible(caller, row["owner"] if row else None, "alert", alert_id)
    deliveries = alertquery.deliveries_of(store, row.get("uid"), caller)
    return AlertDetail(**row, deliveries=[DeliveryOut(**d) for d in deliveries])
