"""Deliveries (``/deliveries``): what was sent where and when, what is pending and why, dead ones with
their reason and a Retry button; filters (status, channel, run) and keyset pagination.

The list is the API's query (:func:`alerts.server.deliveryquery.list_deliveries` with the session's
Principal: a user sees the deliveries to their own channels, an admin everyone's); Retry is the API's
retry route. Why a pending delivery waits is read off the row and its group's last send
(:mod:`alerts.web.deliverystatus`).
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from alerts.server import deliveryquery
from alerts.server.pagination import decode_cursor, page_of
from alerts.server.routes import channels as channel_api
from alerts.server.routes import deliveries as api
from alerts.server.sessions import WebSession
from alerts.web import deliverystatus
from alerts.web.pageauth import local_path, page_session, posted_form
from alerts.web.render import render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
STATES = {"pending": "pending", "sent": "sent", "dead": "dead", "suppressed": "silenced"}


def _filter(value: Optional[str], limit: int) -> Optional[str]:
    value = (value or "").strip()
    return value[:limit] if value else None


@router.get("/deliveries")
def deliveries_page(request: Request, state: Optional[str] = None, channel: Optional[str] = None,
                    run: Optional[str] = None, cursor: Optional[str] = None, retried: Optional[str] = None,
                    stale: Optional[str] = None, session: WebSession = Depends(page_session)):
    app_state = request.app.state
    filters = {"state": state if state in STATES else None, "channel": _filter(channel, 512),
               "run": _filter(run, 256)}
    problem = None
    after = None
    if cursor:
        try:
            after = decode_cursor(cursor[:512])
            if not isinstance(after, int) or isinstance(after, bool):
                raise HTTPException(400)
        except HTTPException:
            problem, after = "That page link is not one this page made: showing the newest deliveries.", None
    rows = deliveryquery.list_deliveries(app_state.store, session.principal, state=filters["state"], user=None,
                                         alert_uid=None, destination=None, limit=PAGE_SIZE, after=after,
                                         channel=filters["channel"], run_id=filters["run"])
    items, next_cursor = page_of(rows, PAGE_SIZE, lambda row: row["id"])
    now = app_state.clock()
    waiting = {(row["destination"], row["group_key"]) for row in items
               if row["state"] == "pending" and not row.get("last_error")}
    last_sent = deliveryquery.groups_last_sent(app_state.store, waiting)
    interval = app_state.settings.group_interval
    shown = [(row, deliverystatus.describe(row, now=now, group_interval=interval,
                                           group_last_sent=last_sent.get((row["destination"], row["group_key"]))))
             for row in items]
    query = {key: value for key, value in filters.items() if value}
    here = "/deliveries" + (f"?{urlencode({**query, 'cursor': cursor})}" if cursor else
                            f"?{urlencode(query)}" if query else "")
    channels = channel_api.list_channels(request, None, session.principal).items
    return render(request, "deliveries.html", session, rows=shown, filters=filters, states=STATES,
                  channels=sorted({c.key for c in channels}), problem=problem, here=here,
                  first_page="/deliveries" + (f"?{urlencode(query)}" if query else "") if cursor else None,
                  next_page=f"/deliveries?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None,
                  retried=retried if retried and retried.isdigit() else None,
                  stale=stale if stale and stale.isdigit() else None)


def _back(form, delivery_id: int, outcome: str) -> str:
    """The list the Retry was pressed on, with what became of it."""
    back = form.get("back")
    parts = urlsplit(local_path(back if isinstance(back, str) else None, "/deliveries"))
    if parts.path != "/deliveries":
        return f"/deliveries?{outcome}={delivery_id}"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("retried", "stale")] + [(outcome, delivery_id)]
    return f"/deliveries?{urlencode(query)}"


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, delivery_id: int, posted=Depends(posted_form)):
    session, form = posted
    try:
        api.retry_delivery(request, delivery_id, session.principal)
    except HTTPException as exc:
        if exc.status_code == 409:  # not dead any more (retried already, or sent): say so on the list
            return RedirectResponse(_back(form, delivery_id, "stale"), status_code=303)
        return render(request, "manage_message.html", session, status_code=exc.status_code,
                      heading="No such delivery", message=str(exc.detail), back="/deliveries")
    return RedirectResponse(_back(form, delivery_id, "retried"), status_code=303)
