"""Silences through the API: who may make, see and end which (the store's queries and the relay's
matching are :mod:`alerts.pipeline.silence`'s).

The choice made here: **a user's silence mutes only the deliveries to that user's own channels**
(``SilenceRecord.user``). A silence is "I don't want to hear about this": if Bob could mute
``project=vision`` for everyone, Alice would miss her own run's NaN without knowing why. An admin
may make a silence for everyone (``scope: all``), as the operator can with ``alerts silence add``;
by default an admin's silence is theirs alone too, so muting one's own noise never mutes others.

Seeing: a user sees their own silences and those that mute everyone (they mute the user's
deliveries too, so the user must be able to find why a delivery was suppressed); another user's own
silence is a 404. Ending early: a user ends their own; one that mutes everyone only an admin (403).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sqlalchemy import or_, select

from alerts.pipeline import silence
from alerts.server.accounts import Principal
from alerts.store.db import Store
from alerts.store.models import SilenceRecord

MAX_DURATION = 366 * 86400.0  # a silence longer than a year is a rule that should be changed instead
MAX_REGEX = 1000  # characters of one regex matcher


class SilenceRefused(ValueError):
    """A silence that cannot be made; ``field`` names the body's field at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class Forbidden(Exception):
    """The caller may see the silence but not do this to it."""


def state_of(s: silence.Silence, now: float) -> str:
    if s.ends_at <= now:
        return "expired"
    return "pending" if s.starts_at > now else "active"


@dataclass(frozen=True)
class Window:
    starts_at: float
    ends_at: float


def window(now: float, *, starts_at: Optional[float], ends_at: Optional[float], duration: Optional[float]) -> Window:
    """When a silence is in force, from what the body gave (``duration`` or ``ends_at``)."""
    start = now if starts_at is None else starts_at
    if (duration is None) == (ends_at is None):
        raise SilenceRefused("give either duration or ends_at", "duration")
    if duration is not None:
        if not 0 < duration <= MAX_DURATION:
            raise SilenceRefused(f"duration must be more than 0 s and at most {MAX_DURATION / 86400:.0f} days", "duration")
        end = start + duration
    else:
        end = ends_at
        if end <= start:
            raise SilenceRefused("ends_at must be after starts_at (or now)", "ends_at")
        if end - start > MAX_DURATION:
            raise SilenceRefused(f"a silence lasts at most {MAX_DURATION / 86400:.0f} days", "ends_at")
    if end <= now:
        raise SilenceRefused("the silence would already be over", "ends_at" if ends_at is not None else "duration")
    return Window(start, end)


def matchers_from(texts: list) -> list[silence.Matcher]:
    """Matchers from ``"name=value"`` strings or ``{name, op, value}`` objects."""
    matchers = []
    for index, item in enumerate(texts):
        text = item if isinstance(item, str) else f"{item['name']}{item['op']}{item['value']}"
        try:
            matcher = silence.parse_matcher(text)
        except ValueError as exc:
            raise SilenceRefused(str(exc), f"matchers.{index}") from None
        if matcher.op in ("=~", "!~") and len(matcher.value) > MAX_REGEX:
            raise SilenceRefused(f"a regex is at most {MAX_REGEX} characters", f"matchers.{index}")
        matchers.append(matcher)
    if not matchers:
        raise SilenceRefused("a silence needs at least one matcher", "matchers")
    return matchers


def create(store: Store, caller: Principal, matchers: list[silence.Matcher], when: Window, comment: str,
           scope: str, now: float) -> silence.Silence:
    """Make a silence as ``caller``: their own (``scope`` "mine"), or everyone's (admins: "all")."""
    if scope == "all" and not caller.is_admin:
        raise Forbidden("only an admin makes a silence that mutes everyone's deliveries (scope: all)")
    user = None if scope == "all" else caller.name
    silence_id = silence.add(store, matchers, when.starts_at, when.ends_at, caller.name, comment, now, user=user)
    return silence.get(store, silence_id)


def can_see(caller: Principal, s: silence.Silence) -> bool:
    return caller.is_admin or s.user is None or s.user == caller.name


def expire(store: Store, caller: Principal, s: silence.Silence, now: float) -> bool:
    """End ``s`` now; False if it was over already. Forbidden for a user ending everyone's silence."""
    if not caller.is_admin and s.user != caller.name:
        raise Forbidden("this silence mutes everyone's deliveries: only an admin ends it")
    return silence.expire(store, s.id, now)


def listing(store: Store, caller: Principal, *, now: float, state: str, user: Optional[str], limit: int,
            after: Optional[int]) -> list[silence.Silence]:
    """Up to ``limit + 1`` silences the caller may see, newest first, ids below ``after``.
    ``state``: ``current`` (in force or to come), ``active``, ``pending``, ``expired`` or ``all``."""
    query = select(SilenceRecord)
    if not caller.is_admin:
        if user is not None and user != caller.name:
            return []  # another user's own silences: as if they had none
        query = query.where(or_(SilenceRecord.user.is_(None), SilenceRecord.user == caller.name))
    elif user is not None:
        query = query.where(SilenceRecord.user == user)
    if state in ("current", "active", "pending"):
        query = query.where(SilenceRecord.ends_at > now)
    if state == "active":
        query = query.where(SilenceRecord.starts_at <= now)
    elif state == "pending":
        query = query.where(SilenceRecord.starts_at > now)
    elif state == "expired":
        query = query.where(SilenceRecord.ends_at <= now)
    if after is not None:
        query = query.where(SilenceRecord.id < after)
    query = query.order_by(SilenceRecord.id.desc()).limit(limit + 1)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [silence.from_record(SilenceRecord.model_validate(row._mapping)) for row in rows]
