"""Who is calling: ``Authorization: Bearer <key>`` -> :class:`~alerts.server.accounts.Principal`.

Every API route depends on :func:`current_user`. A missing, unknown or revoked key is a 401 with the same
body whichever it was (no hint of which keys exist). A key found valid is remembered for
``ALERTS_KEY_CACHE_SECONDS`` (:mod:`alerts.server.keycache`): a revoked key stops working within that.
The web page's browsers call the same API with their session cookie instead
(:mod:`alerts.server.sessions`); a state-changing call made that way must carry the session's CSRF token
in ``X-CSRF-Token`` (403 otherwise). Visibility is decided by :func:`visible` and
:func:`require_visible`: another user's object is a 404, exactly as if it did not exist.
"""

from __future__ import annotations

from typing import Optional

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from alerts.server import sessions
from alerts.server.accounts import Principal

_bearer = HTTPBearer(auto_error=False, description="An API key: `alerts users add NAME` prints one.")


def _unauthorized() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid API key (Authorization: Bearer <key>)",
                         headers={"WWW-Authenticate": "Bearer"})


async def current_user(request: Request,
                       credentials: Optional[HTTPAuthorizationCredentials] = Depends(_bearer)) -> Principal:
    """The caller, from their API key (or the web page's session cookie); 401 otherwise."""
    state = request.app.state
    if credentials is None or not credentials.credentials:
        return _session_user(request)
    principal = state.key_cache.lookup(state.store, credentials.credentials, now=state.clock())
    if principal is None:
        raise _unauthorized()
    return principal


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _session_user(request: Request) -> Principal:
    state = request.app.state
    session = sessions.lookup(state.store, request.cookies.get(sessions.COOKIE), now=state.clock())
    if session is None:
        raise _unauthorized()
    if request.method not in SAFE_METHODS and not sessions.csrf_matches(
            session, request.headers.get(sessions.CSRF_HEADER)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"a call made with the session cookie needs the "
                            f"session's CSRF token in the {sessions.CSRF_HEADER} header")
    return session.principal


async def admin_user(user: Principal = Depends(current_user)) -> Principal:
    """The caller, who must be an admin; 403 otherwise."""
    if not user.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs an admin's key")
    return user


def not_found(what: str, ident: object) -> HTTPException:
    """The 404 for a missing object, and for one the caller may not see (the same answer)."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {ident!r}")


def require_visible(user: Principal, owner: Optional[str], what: str, ident: object) -> None:
    """404 unless ``user`` may see an object owned by ``owner``."""
    if owner is None or not user.can_see(owner):
        raise not_found(what, ident)
