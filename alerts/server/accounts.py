"""Users and their API keys, in the store: what ``alerts users ...``/``alerts keys ...`` and the API's
authentication share.

A key reads ``ak_<43 url-safe characters>`` (256 random bits). Only its SHA-256 is stored; the key is
returned once, by :func:`add_user` or :func:`create_key`, and never again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import bindparam, update
from sqlmodel import Session, select

from alerts.store.db import Store
from alerts.store.models import ApiKeyRecord, UserRecord

KEY_PREFIX = "ak_"
# Characters of a key kept in clear for lists and revocation: "ak_" and 8 of the random part.
SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 8
# A user name: what runs.owner holds in the embedded mode too (a login name), so it stays simple.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class AccountError(ValueError):
    """A user or key operation that cannot be done (bad name, duplicate user, unknown key)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user name and whether they are an admin."""

    name: str
    is_admin: bool = False

    def can_see(self, owner: Optional[str]) -> bool:
        """Whether this caller may see (and change) an object owned by ``owner``."""
        return self.is_admin or owner == self.name


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    """A fresh random key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def check_user_name(name: str) -> str:
    if not isinstance(name, str) or not USER_NAME.match(name):
        raise AccountError(f"invalid user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', "
                           "starting with a letter or digit")
    return name


def add_user(store: Store, name: str, *, admin: bool = False, now: float) -> str:
    """Create user ``name`` with a first API key, and return that key (shown once)."""
    check_user_name(name)
    with Session(store.engine) as session:
        if session.get(UserRecord, name) is not None:
            raise AccountError(f"user {name!r} already exists (alerts keys create {name} makes another key)")
        session.add(UserRecord(name=name, is_admin=admin, created_at=now))
        session.commit()
    return create_key(store, name, now=now)


def create_key(store: Store, user: str, *, now: float, label: str = "") -> str:
    """Another API key for an existing user; returned once."""
    key = new_key()
    with Session(store.engine) as session:
        record = session.get(UserRecord, user)
        if record is None or record.disabled:
            raise AccountError(f"no user {user!r} (alerts users add {user})")
        session.add(ApiKeyRecord(user=user, prefix=key[:SHOWN_PREFIX_CHARS], key_hash=hash_key(key),
                                 created_at=now, label=label))
        session.commit()
    return key


def revoke_key(store: Store, prefix: str, *, now: float, user: Optional[str] = None) -> int:
    """Revoke the live keys whose shown prefix is ``prefix`` (of ``user`` only, if given); how many."""
    if len(prefix) < SHOWN_PREFIX_CHARS:
        raise AccountError(f"give the key's first {SHOWN_PREFIX_CHARS} characters, as `alerts users list` shows them")
    prefix = prefix[:SHOWN_PREFIX_CHARS]
    statement = (update(ApiKeyRecord).where(ApiKeyRecord.prefix == prefix, ApiKeyRecord.revoked_at.is_(None))
                 .values(revoked_at=now))
    if user is not None:
        statement = statement.where(ApiKeyRecord.user == user)
    with store.engine.begin() as conn:
        return conn.execute(statement).rowcount


def list_users(store: Store) -> list[tuple[UserRecord, list[ApiKeyRecord]]]:
    """Every user with their keys (hashes are never part of what callers show)."""
    with Session(store.engine) as session:
        users = session.exec(select(UserRecord).order_by(UserRecord.name)).all()
        keys = session.exec(select(ApiKeyRecord).order_by(ApiKeyRecord.id)).all()
    by_user: dict[str, list[ApiKeyRecord]] = {}
    for key in keys:
        by_user.setdefault(key.user, []).append(key)
    return [(user, by_user.get(user.name, [])) for user in users]


def plausible_key(key: str) -> bool:
    """Whether ``key`` has a key's shape at all (anything else is refused without a lookup)."""
    return key.startswith(KEY_PREFIX) and len(key) <= 200


# One Core query, no ORM session: every request that misses the key cache pays for it (a session and
# entity loading cost about three times as much). Built once: building the statement cost as much as
# running it.
_KEY_QUERY = (select(ApiKeyRecord.key_hash, ApiKeyRecord.revoked_at, UserRecord.name, UserRecord.is_admin,
                     UserRecord.disabled)
              .join(UserRecord, UserRecord.name == ApiKeyRecord.user)
              .where(ApiKeyRecord.key_hash == bindparam("digest")))


def authenticate(store: Store, key: str, *, now: float) -> Optional[Principal]:
    """The user a presented key belongs to, or None (unknown, revoked, or its user disabled)."""
    if not plausible_key(key):
        return None
    return authenticate_digest(store, hash_key(key))


def authenticate_digest(store: Store, digest: str) -> Optional[Principal]:
    """:func:`authenticate` of the key whose :func:`hash_key` is ``digest``."""
    with store.engine.connect() as conn:
        row = conn.execute(_KEY_QUERY, {"digest": digest}).first()
    if row is None:
        return None
    key_hash, revoked_at, name, is_admin, disabled = row
    # The lookup was by hash; compare once more in constant time so no branch depends on the key's bytes.
    if not hmac.compare_digest(key_hash, digest) or revoked_at is not None or disabled:
        return None
    return Principal(name=name, is_admin=bool(is_admin))
