"""The alert inbox (``/inbox``), an alert's page (``/inbox/alerts/{id}``) and silencing from it.

The inbox reads through :func:`alerts.server.alertquery.list_alerts`, the query behind ``GET
/api/v1/alerts``, with the session's Principal (so it shows exactly what the API would: the caller's
runs' alerts, an admin everyone's), one keyset page of alerts grouped into incidents
(:mod:`alerts.web.incidents`). ``static/inbox.js`` then polls ``/api/v1/alerts`` about once a second
for alerts newer than the newest shown and folds them into the rows, without a reload.

Silencing posts a form (with the session's CSRF token, checked by :func:`posted_form`) that is
handed to the handler of ``POST /api/v1/silences`` itself: the same validation, the same limits, the
same ``scope: mine``.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from alerts.pipeline.incident import INCIDENT_GAP
from alerts.server import alertquery
from alerts.server.pagination import decode_cursor, page_of
from alerts.server.routes import silences as silences_api
from alerts.server.sessions import WebSession
from alerts.web import incidents
from alerts.web.pageauth import page_session, posted_form
from alerts.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_ALERTS = 200  # alerts read for one page of the inbox (grouped, that is fewer rows)
LIVE_SLACK_S = 60.0  # the page polls from this long before its newest alert (a commit can land late)
LEVELS = ("INFO", "WARN", "ERROR")
STATUSES = ("firing", "resolved")
WINDOWS = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
# Labels offered as matchers when silencing from an alert; the first ones are ticked (the incident's key).
SILENCE_LABELS = ("rule", "project", "group", "run_name", "run", "title", "level", "metric", "status", "owner")
DEFAULT_DURATION = "2h"


def _text(value: Optional[str], limit: int = 256) -> Optional[str]:
    value = (value or "").strip()
    return value[:limit] if value else None


def read_filters(request: Request) -> dict:
    """The inbox's filters from the query string; a value it does not know is left out."""
    q = request.query_params
    filters = {"project": _text(q.get("project")), "group": _text(q.get("group")), "rule": _text(q.get("rule")),
               "level": q.get("level") if q.get("level") in LEVELS else None,
               "status": q.get("status") if q.get("status") in STATUSES else None,
               "time": q.get("time") if q.get("time") in WINDOWS else None}
    return filters


def _after(cursor: Optional[str]) -> Optional[int]:
    if not cursor:
        return None
    try:
        after = decode_cursor(cursor[:512])
    except HTTPException:
        return None  # not one of ours: the first page
    return after if isinstance(after, int) and not isinstance(after, bool) else None


@router.get("/inbox")
def inbox(request: Request, session: WebSession = Depends(page_session)):
    filters = read_filters(request)
    now = request.app.state.clock()
    since = now - WINDOWS[filters["time"]] if filters["time"] else None
    query = alertquery.AlertFilter(project=filters["project"], group=filters["group"], rule=filters["rule"],
                                   level=filters["level"], status=filters["status"], since=since)
    after = _after(request.query_params.get("cursor"))
    rows = alertquery.list_alerts(request.app.state.store, session.principal, query, PAGE_ALERTS, after)
    rows, next_cursor = page_of(rows, PAGE_ALERTS, lambda row: row["id"])
    grouped = incidents.group(rows)
    if next_cursor and rows:
        incidents.mark_continuing(grouped, rows[-1]["created_at"])
    chosen = {name: value for name, value in filters.items() if value}
    # What the page's script polls: the API's own filters (time becomes since, in seconds).
    api_query = {name: value for name, value in filters.items() if value and name != "time"}
    newest = rows[0]["created_at"] if rows else None
    recent = [row["id"] for row in rows if newest is not None and row["created_at"] >= newest - LIVE_SLACK_S]
    return render(request, "inbox.html", session, incidents=grouped, filters=filters, levels=LEVELS,
                  statuses=STATUSES, windows=WINDOWS, live=after is None,
                  api_query=urlencode(api_query), since=since, newest=newest if newest is not None else now,
                  recent_ids=recent, gap=INCIDENT_GAP, slack=LIVE_SLACK_S,
                  older=("/inbox?" + urlencode({**chosen, "cursor": next_cursor})) if next_cursor else None,
                  newer=("/inbox?" + urlencode(chosen)) if after is not None else None)


def silence_labels(alert: dict) -> list[tuple[str, str, bool]]:
    """``(label, value, ticked)`` for the alert's labels with a value, as the relay matches them
    (:func:`alerts.pipeline.silence.labels_of`); the incident's key (rule, and group or project) ticked."""
    values = {"rule": alert.get("rule") or "alert", "project": alert.get("project"), "group": alert.get("run_group"),
              "run_name": alert.get("run_name"), "run": alert.get("run_id"), "title": alert.get("title"),
              "level": alert.get("level"), "metric": alert.get("metric"), "status": alert.get("status"),
              "owner": alert.get("owner")}
    ticked = {"rule", "group"} if values["group"] else {"rule", "project"}
    return [(name, str(values[name]), name in ticked) for name in SILENCE_LABELS if values[name]]


def _visible_alert(request: Request, session: WebSession, alert_id: int) -> Optional[dict]:
    """The alert if the session's user may see it (theirs; an admin: any), else None."""
    if not -2**63 <= alert_id < 2**63:
        return None
    row = alertquery.get_alert(request.app.state.store, alert_id)
    if row is None or not session.principal.can_see(row["owner"]):
        return None
    return row


def _alert_page(request: Request, session: WebSession, alert: Optional[dict], alert_id: int, *,
                form: Optional[dict] = None, error: Optional[str] = None, status_code: int = 200):
    if alert is None:  # another user's alert is as missing as one that never was
        return render(request, "alert.html", session, alert=None, alert_id=alert_id, status_code=404)
    deliveries = alertquery.deliveries_of(request.app.state.store, alert.get("uid"), session.principal)
    labels = silence_labels(alert)
    if form is not None:  # what the user sent, shown again with the error
        chosen = set(form["matchers"])
        labels = [(name, value, f"{name}={value}" in chosen) for name, value, _ in labels]
    return render(request, "alert.html", session, alert=alert, alert_id=alert_id, deliveries=deliveries,
                  labels=labels, form=form or {"extra": "", "duration": DEFAULT_DURATION, "comment": ""},
                  error=error, status_code=status_code)


@router.get("/inbox/alerts/{alert_id}")
def alert_page(request: Request, alert_id: int, session: WebSession = Depends(page_session)):
    return _alert_page(request, session, _visible_alert(request, session, alert_id), alert_id)


def _error_text(errors: list) -> str:
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "the silence was refused"


@router.post("/inbox/alerts/{alert_id}/silence")
async def silence_from_alert(request: Request, alert_id: int, posted=Depends(posted_form)):
    session, form = posted
    alert = _visible_alert(request, session, alert_id)
    if alert is None:
        return _alert_page(request, session, None, alert_id)
    matchers = [m for m in form.getlist("matcher") if isinstance(m, str)]
    extra = form.get("extra") if isinstance(form.get("extra"), str) else ""
    matchers += [line.strip() for line in extra.splitlines() if line.strip()]
    duration = form.get("duration") if isinstance(form.get("duration"), str) else ""
    comment = form.get("comment") if isinstance(form.get("comment"), str) else ""
    sent = {"matchers": matchers, "extra": extra, "duration": duration.strip(), "comment": comment}
    try:
        body = silences_api.SilenceIn(matchers=matchers, duration=duration.strip() or None, comment=comment.strip(),
                                      scope="mine")
        made = silences_api.create_silence(request, body, session.principal)
    except ValidationError as exc:
        return _alert_page(request, session, alert, alert_id, form=sent, error=_error_text(exc.errors()),
                           status_code=422)
    except RequestValidationError as exc:
        return _alert_page(request, session, alert, alert_id, form=sent, error=_error_text(list(exc.errors())),
                           status_code=422)
    except HTTPException as exc:
        return _alert_page(request, session, alert, alert_id, form=sent, error=str(exc.detail),
                           status_code=exc.status_code)
    return RedirectResponse(f"/silences?made={made.id}", status_code=303)

