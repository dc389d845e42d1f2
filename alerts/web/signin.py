"""Sign-in (an API key exchanged for a session cookie) and sign-out."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse

from alerts.server import sessions
from alerts.web.pageauth import current_session, local_path, posted_form
from alerts.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/")
def home(request: Request):
    """The inbox for a signed-in browser, the sign-in page otherwise."""
    return RedirectResponse("/inbox" if current_session(request) else "/login", status_code=303)


@router.get("/login")
def sign_in_page(request: Request, next: str = "/inbox"):
    return render(request, "signin.html", None, back_to=local_path(next, "/inbox"), error=None)


def _cross_site(request: Request) -> bool:
    # A sign-in form posted from another site would sign this browser in as the attacker's user
    # (login CSRF): browsers send Origin with every POST, so a foreign one is refused.
    origin = request.headers.get("origin")
    return bool(origin) and origin != "null" and urlsplit(origin).netloc != request.headers.get("host")


@router.post("/login")
async def sign_in(request: Request):
    form = await request.form()
    key = form.get("key")
    back_to = local_path(form.get("next") if isinstance(form.get("next"), str) else None, "/inbox")
    state = request.app.state
    opened = None
    if isinstance(key, str) and not _cross_site(request):
        opened = sessions.sign_in(state.store, key.strip(), now=state.clock())
    if opened is None:
        # One answer for a wrong, revoked or missing key: no hint of which keys exist. The form again,
        # with the reason (200: a browser shows a 401 page's failure in its console as an error).
        return render(request, "signin.html", None, back_to=back_to,
                      error="That key was not accepted: it is unknown, revoked, or its user is disabled.")
    token, session = opened
    response = RedirectResponse(back_to, status_code=303)
    response.set_cookie(sessions.COOKIE, token, max_age=int(sessions.SESSION_TTL_S), httponly=True,
                        samesite="lax", secure=request.url.scheme == "https", path="/")
    return response


@router.post("/logout")
async def sign_out(request: Request, posted=Depends(posted_form)):
    sessions.sign_out(request.app.state.store, request.cookies.get(sessions.COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="lax",
                           secure=request.url.scheme == "https")
    return response
