"""Who is looking at a page: the session cookie -> :class:`~alerts.server.sessions.WebSession`.

A page asks for :func:`page_session` (no session: a redirect to the sign-in page, which comes back
here afterwards); a form handler asks for :func:`posted_form`, which also checks the form's CSRF token
(a form without it, or with another session's, changes nothing: 403).
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData

from alerts.server import sessions
from alerts.server.sessions import WebSession


class SignInRequired(Exception):
    """No live session: the page sends the browser to sign in."""

    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to


class CsrfRejected(Exception):
    """A state-changing form without the session's CSRF token."""


def local_path(target: Optional[str], default: str = "/") -> str:
    """``target`` if it is a path on this site, else ``default`` (no open redirect to ``//evil``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def current_session(request: Request) -> Optional[WebSession]:
    """The request's live session, or None."""
    state = request.app.state
    return sessions.lookup(state.store, request.cookies.get(sessions.COOKIE), now=state.clock())


def page_session(request: Request) -> WebSession:
    """The signed-in session of a page's request (dependency); sign-in first otherwise."""
    session = current_session(request)
    if session is None:
        back_to = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(back_to)
    return session


async def posted_form(request: Request) -> tuple[WebSession, FormData]:
    """The session and the form of a state-changing post whose CSRF token is the session's."""
    session = page_session(request)
    form = await request.form()
    token = form.get(sessions.CSRF_FIELD)
    if not isinstance(token, str) or not sessions.csrf_matches(session, token):
        raise CsrfRejected()
    return session, form


def install(app: FastAPI) -> None:
    """Answer :class:`SignInRequired` with a redirect and :class:`CsrfRejected` with a 403 page."""

    async def to_sign_in(request: Request, exc: SignInRequired):
        return RedirectResponse(f"/login?next={quote(local_path(exc.back_to), safe='/')}", status_code=303)

    async def csrf_rejected(request: Request, exc: CsrfRejected):
        return HTMLResponse("<!doctype html><title>Refused</title><p>This form was not sent by this session's "
                            "page (its CSRF token is missing or wrong), so nothing was changed. "
                            "<a href=\"/\">Back</a></p>", status_code=403)

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
