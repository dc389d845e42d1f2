"""The alert inbox (``/inbox``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from alerts.server.sessions import WebSession
from alerts.web.pageauth import page_session
from alerts.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/inbox")
def inbox(request: Request, session: WebSession = Depends(page_session)):
    return render(request, "inbox.html", session)
