"""Browser sessions: an API key exchanged for a cookie, for the web page (``alerts/web``).

The cookie holds 256 random bits; the store keeps their SHA-256 (``web_sessions``), the user, the key the
session was opened with and the session's CSRF token. :func:`lookup` is one query that also checks the
key is not revoked and the user not disabled, so revoking a key signs its browsers out at their next
request. A session expires :data:`SESSION_TTL_S` after sign-in (no sliding renewal: a stolen cookie is
good for a bounded time).

CSRF: every state-changing request made with the cookie must carry the session's token, in the form
field ``csrf`` or the header ``X-CSRF-Token`` (:func:`csrf_matches`). SameSite=Lax keeps other sites'
forms from sending the cookie at all in current browsers; the token covers the rest.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import delete, insert, select

from alerts.server.accounts import Principal, hash_key
from alerts.store.db import Store
from alerts.store.models import ApiKeyRecord, UserRecord, WebSessionRecord

COOKIE = "alerts_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
SESSION_TTL_S = 12 * 3600.0
TOKEN_PREFIX = "ws_"


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser: who, and the CSRF token its forms carry."""

    principal: Principal
    csrf: str
    expires_at: float


def sign_in(store: Store, key: str, *, now: float) -> Optional[tuple[str, WebSession]]:
    """A new session for the holder of API key ``key``: ``(cookie token, session)``, or None when the key
    is unknown, revoked or its user disabled (the same answer for each)."""
    from alerts.server.accounts import authenticate

    principal = authenticate(store, key, now=now)
    if principal is None:
        return None
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session = WebSession(principal, secrets.token_urlsafe(32), now + SESSION_TTL_S)
    with store.engine.begin() as conn:
        # Expired sessions go when someone signs in: the table stays as small as the live sessions.
        conn.execute(delete(WebSessionRecord).where(WebSessionRecord.expires_at <= now))
        conn.execute(insert(WebSessionRecord).values(
            token_hash=hash_key(token), user=principal.name, key_hash=hash_key(key), csrf=session.csrf,
            created_at=now, expires_at=session.expires_at))
    return token, session


def lookup(store: Store, token: Optional[str], *, now: float) -> Optional[WebSession]:
    """The live session of cookie ``token``, or None (none, expired, signed out, key revoked, user
    disabled)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_key(token)
    query = (select(WebSessionRecord.token_hash, WebSessionRecord.csrf, WebSessionRecord.expires_at,
                    UserRecord.name, UserRecord.is_admin, UserRecord.disabled, ApiKeyRecord.revoked_at)
             .join(UserRecord, UserRecord.name == WebSessionRecord.user)
             .join(ApiKeyRecord, ApiKeyRecord.key_hash == WebSessionRecord.key_hash)
             .where(WebSessionRecord.token_hash == digest))
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    token_hash, csrf, expires_at, name, is_admin, disabled, revoked_at = row
    if not hmac.compare_digest(token_hash, digest) or expires_at <= now or disabled or revoked_at is not None:
        return None
    return WebSession(Principal(name=name, is_admin=bool(is_admin)), csrf, expires_at)


def sign_out(store: Store, token: Optional[str]) -> None:
    """End the session of cookie ``token`` (nothing if there is none)."""
    if token:
        with store.engine.begin() as conn:
            conn.execute(delete(WebSessionRecord).where(WebSessionRecord.token_hash == hash_key(token)))


def csrf_matches(session: WebSession, presented: Optional[str]) -> bool:
    """Whether ``presented`` is the session's CSRF token (compared in constant time)."""
    return bool(presented) and hmac.compare_digest(session.csrf.encode(), presented.encode("utf-8", "replace"))
