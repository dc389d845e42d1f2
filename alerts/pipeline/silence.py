"""Silences: label matchers, a start and an end, who and why (as Alertmanager's).

An alert's labels: ``rule`` (``alert`` for an explicit call), ``title``, ``level``, ``owner``,
``project``, ``group``, ``run`` (id), ``run_name``, ``metric``, ``status``. A silence mutes every
delivery whose labels match all its matchers while ``starts_at <= now < ends_at``; the relay records
such a delivery as ``suppressed`` with the silence that muted it. Matchers: ``name=value``,
``name!=value``, ``name=~regex``, ``name!~regex`` (regexes match the whole value, in RE2's syntax and
linear time: :mod:`alerts.pipeline.regex`).

A silence mutes everyone's deliveries (``user`` None: ``alerts silence add``, run by whoever runs the
store, or an admin of the server), or only those to one user's channels (``user`` set: what a user
makes through the server's API). One user's silence never mutes what another user is sent: a
silence is "I don't want to hear about this", and only the store's operator or an admin may say it
for everybody.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Iterable, Optional

from sqlalchemy import delete, select, update

from alerts.pipeline import regex
from alerts.store.db import Store
from alerts.store.models import SilenceRecord

LABELS = ("rule", "title", "level", "owner", "project", "group", "run", "run_name", "metric", "status")
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str  # = != =~ !~
    value: str

    def matches(self, labels: dict) -> bool:
        actual = str(labels.get(self.name) or "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        try:
            found = regex.fullmatch(self.value, actual)
        except ValueError:  # stored before RE2 checked it: matches nothing rather than stall or crash
            found = False
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """``project=vision``, ``rule!=stalled``, ``run_name=~"sweep-.*"``; ValueError naming the problem."""
    match = _MATCHER.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a matcher (use name=value, name!=value, name=~regex or name!~regex)")
    name, op, value = match.groups()
    if name not in LABELS:
        raise ValueError(f"unknown label {name!r} in {text!r} (labels: {', '.join(LABELS)})")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if op in ("=~", "!~"):
        try:
            regex.compile_linear(value)
        except ValueError as exc:
            raise ValueError(f"{exc} in {text!r}") from None
    return Matcher(name, op, value)


def labels_of(payload: dict) -> dict:
    """An alert's labels, from a delivery's payload (a Notification as a dict)."""
    return {"rule": payload.get("rule") or "alert", "title": payload.get("title"), "level": payload.get("level"),
            "owner": payload.get("owner"), "project": payload.get("project"), "group": payload.get("run_group"),
            "run": payload.get("run_id"), "run_name": payload.get("run_name"), "metric": payload.get("metric"),
            "status": payload.get("status")}


@dataclass(frozen=True)
class Silence:
    id: int
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    user: Optional[str] = None  # None: everyone's deliveries; else only those to this user's channels
    created_at: Optional[float] = None

    def mutes(self, labels: dict, now: float, recipient: Optional[str] = None) -> bool:
        """Whether it mutes, at ``now``, a delivery of an alert with ``labels`` to ``recipient``."""
        if self.user is not None and recipient != self.user:
            return False
        return self.starts_at <= now < self.ends_at and all(m.matches(labels) for m in self.matchers)


def from_record(record: SilenceRecord) -> Silence:
    matchers = tuple(Matcher(**m) for m in json.loads(record.matchers))
    return Silence(record.id, matchers, record.starts_at, record.ends_at, record.created_by, record.comment,
                   record.user, record.created_at)


def add(store: Store, matchers: Iterable[Matcher], starts_at: float, ends_at: float, created_by: str,
        comment: str, now: float, user: Optional[str] = None) -> int:
    """Create a silence; returns its id. ``user``: mute only the deliveries to that user's channels."""
    matchers = list(matchers)
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    if ends_at <= starts_at:
        raise ValueError("a silence must end after it starts")
    record = SilenceRecord(matchers=json.dumps([m.__dict__ for m in matchers]), starts_at=starts_at, ends_at=ends_at,
                           created_by=created_by, comment=comment, created_at=now, user=user)
    from sqlmodel import Session

    with Session(store.engine) as session:
        session.add(record)
        session.commit()
        session.refresh(record)
        return record.id


def listing(store: Store, now: float, include_expired: bool = False) -> list[Silence]:
    query = select(SilenceRecord).order_by(SilenceRecord.id)
    if not include_expired:
        query = query.where(SilenceRecord.ends_at > now)
    with store.engine.connect() as conn:
        return [from_record(SilenceRecord.model_validate(row._mapping)) for row in conn.execute(query).all()]


def get(store: Store, silence_id: int) -> Optional[Silence]:
    """One silence by id, expired or not; None if there is none."""
    with store.engine.connect() as conn:
        row = conn.execute(select(SilenceRecord).where(SilenceRecord.id == silence_id)).first()
    return None if row is None else from_record(SilenceRecord.model_validate(row._mapping))


def active(store: Store, now: float) -> list[Silence]:
    return [s for s in listing(store, now) if s.starts_at <= now]


def expire(store: Store, silence_id: int, now: float) -> bool:
    """End a silence now; False if there is no such silence still in force or pending."""
    with store.engine.begin() as conn:
        result = conn.execute(update(SilenceRecord).where(SilenceRecord.id == silence_id, SilenceRecord.ends_at > now)
                              .values(ends_at=now))
    return bool(result.rowcount)


def muting(silences: list[Silence], payload: dict, now: float, recipient: Optional[str] = None) -> Optional[Silence]:
    """The first silence that mutes a delivery (of ``payload``, to ``recipient``'s channel), or None."""
    labels = labels_of(payload)
    return next((s for s in silences if s.mutes(labels, now, recipient)), None)


def prune(store: Store, before: float) -> int:
    """Delete the silences that ended before ``before`` (``ALERTS_RETENTION`` ago: as Alertmanager
    keeps expired silences for its retention, so that a recent one can still be looked up and
    recreated). Returns how many went."""
    with store.engine.begin() as conn:
        result = conn.execute(delete(SilenceRecord).where(SilenceRecord.ends_at < before))
    return result.rowcount or 0
