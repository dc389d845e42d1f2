"""Who is calling: ``Authorization: Bearer <key>`` -> :class:`~alerts.server.accounts.Principal`.

Every API route depends on :func:`current_user`. A missing, unknown or revoked key is a 401 with the same
body whichever it was (no hint of which keys exist). Visibility is decided by :func:`visible` and
:func:`require_visible`: another user's object is a 404, exactly as if it did not exist.
"""

from __future__ import annotations

from typing import Optional

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from alerts.server.accounts import Principal, authenticate

_bearer = HTTPBearer(auto_error=False, description="An API key: `alerts users add NAME` prints one.")


def _unauthorized() -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid API key (Authorization: Bearer <key>)",
                         headers={"WWW-Authenticate": "Bearer"})


async def current_user(request: Request,
                       credentials: Optional[HTTPAuthorizationCredentials] = Depends(_bearer)) -> Principal:
    """The caller, from their API key; 401 otherwise."""
    if credentials is None or not credentials.credentials:
        raise _unauthorized()
    state = request.app.state
    principal = authenticate(state.store, credentials.credentials, now=state.clock())
    if principal is None:
        raise _unauthorized()
    return principal


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
