"""Silences (``/silences``): those in force or to come, and the expired ones, with "Expire now".

Listing goes through :func:`alerts.server.silencing.listing` (what ``GET /api/v1/silences`` shows
the same user); "Expire now" posts a form with the session's CSRF token to the handler of ``POST
/api/v1/silences/{id}/expire`` (the same rules: a user ends their own; one that mutes everyone, only
an admin).
"""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from alerts.server import silencing
from alerts.server.pagination import decode_cursor, page_of
from alerts.server.routes import silences as silences_api
from alerts.server.sessions import WebSession
from alerts.web.pageauth import page_session, posted_form
from alerts.web.render import render

router = APIRouter(include_in_schema=False)

CURRENT_LIMIT = 500  # silences in force or to come shown at once (more is a sign of a problem)
EXPIRED_PAGE = 50


def _after(cursor: Optional[str]) -> Optional[int]:
    if not cursor:
        return None
    try:
        after = decode_cursor(cursor[:512])
    except HTTPException:
        return None
    return after if isinstance(after, int) and not isinstance(after, bool) else None


@router.get("/silences")
def silences_page(request: Request, session: WebSession = Depends(page_session)):
    state = request.app.state
    now = state.clock()
    caller = session.principal
    current = silencing.listing(state.store, caller, now=now, state="current", user=None, limit=CURRENT_LIMIT,
                                after=None)[:CURRENT_LIMIT]
    expired_rows = silencing.listing(state.store, caller, now=now, state="expired", user=None, limit=EXPIRED_PAGE,
                                     after=_after(request.query_params.get("cursor")))
    expired, cursor = page_of(expired_rows, EXPIRED_PAGE, lambda s: s.id)
    made = request.query_params.get("made")
    message = request.query_params.get("msg")
    return render(request, "silences.html", session,
                  current=[silences_api._view(s, now) for s in current],
                  expired=[silences_api._view(s, now) for s in expired],
                  older=f"/silences?cursor={cursor}" if cursor else None,
                  made=int(made) if made and made.isdigit() else None,
                  message=message if message in MESSAGES else None, messages=MESSAGES)


MESSAGES = {
    "expired": "The silence was ended: matching alerts are delivered again.",
    "over": "That silence was over already.",
    "forbidden": "That silence mutes everyone's deliveries: only an admin ends it.",
    "missing": "There is no such silence (or it is another user's).",
}


@router.post("/silences/{silence_id}/expire")
async def expire(request: Request, silence_id: int, posted=Depends(posted_form)):
    session, _form = posted
    try:
        silences_api.expire_silence(request, silence_id, session.principal)
        outcome = "expired"
    except HTTPException as exc:
        outcome = {403: "forbidden", 409: "over"}.get(exc.status_code, "missing")
    return RedirectResponse(f"/silences?msg={outcome}", status_code=303)
