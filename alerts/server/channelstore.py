"""Channels users make through the API: checked as strictly as the channel files, stored in
``api_channels``, turned into the same :class:`~alerts.channels.config.Destination` the relay sends to.

A channel's secrets (a Slack ``webhook_url``) are write-only: they are stored apart from the rest
(``ChannelRecord.secrets``), registered with the log redaction as soon as they are known, used to
send, and never returned: :func:`masked_webhook` is all a reader gets.

A channel's name is its key (``user/name``, what deliveries are filed under), so it is unique among
the user's channels, the API's and the file's, and keeps to characters that cannot be mistaken for
the key's separators.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any, Optional, Union
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from alerts import logredact
from alerts.channels.config import (ChannelSet, Destination, EmailChannel, SlackChannel, check_webhook_url,
                                    destinations_of)
from alerts.store.db import Store
from alerts.store.models import ChannelRecord, UserRecord

# Letters, digits, space, '.', '_', '-': never '/' (the key's separator) or '<' (a per-address key's).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
NAME_RULE = "1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit"
SECRET_FIELDS = ("webhook_url",)
MODELS = {"slack": SlackChannel, "email": EmailChannel}


class ChannelProblem(ValueError):
    """A channel that cannot be stored; ``field`` is the body's field at fault (None: the whole)."""

    def __init__(self, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field


class ChannelConflict(ValueError):
    """The name is taken by another channel of the same user."""


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise ChannelProblem(f"name must be {NAME_RULE}", "name")
    return name


def build_config(fields: dict) -> Union[SlackChannel, EmailChannel]:
    """The channel's validated config from its fields (``type`` among them), as a file would give it.
    Raises pydantic's ``ValidationError`` (field by field) or :class:`ChannelProblem`."""
    model = MODELS.get(fields.get("type"))
    if model is None:
        raise ChannelProblem("type must be slack or email", "type")
    return model.model_validate(fields)


def check_config(config: Union[SlackChannel, EmailChannel], webhook_hosts: list[str]) -> None:
    """What the channel files also refuse: a webhook on a host that is not allowed, or over plain http."""
    if isinstance(config, SlackChannel) and config.webhook_url is not None:
        problem = check_webhook_url(config.webhook_url.get_secret_value(), webhook_hosts)
        if problem:
            raise ChannelProblem(problem, "webhook_url")


def _split(config: Union[SlackChannel, EmailChannel]) -> tuple[dict, dict]:
    """(settings, secrets) of a config, as stored."""
    data = config.model_dump(mode="python", exclude={"type", "name"}, exclude_none=True)
    secrets = {}
    for field in SECRET_FIELDS:
        value = data.pop(field, None)
        if isinstance(value, SecretStr):
            secrets[field] = value.get_secret_value()
    return data, secrets


def fields_of(record: ChannelRecord, with_secrets: bool = True) -> dict:
    """The fields a record was made from (``type`` and ``name`` included); secrets only if asked."""
    fields = {"type": record.type, "name": record.name, **json.loads(record.config)}
    if with_secrets:
        fields.update(json.loads(record.secrets))
    return fields


def config_of(record: ChannelRecord) -> Union[SlackChannel, EmailChannel]:
    """A stored channel's config, secrets registered with the log redaction."""
    secrets = json.loads(record.secrets)
    logredact.register(*secrets.values())
    return build_config(fields_of(record))


def masked_webhook(url: Optional[Any]) -> Optional[str]:
    """What a reader is shown of a webhook URL: its scheme and host, never the path (the secret)."""
    if url is None:
        return None
    text = url.get_secret_value() if isinstance(url, SecretStr) else str(url)
    parts = urlsplit(text)
    host = parts.hostname or "?"
    return f"{parts.scheme or 'https'}://{host}/{logredact.MASK}"


def _taken_by_file(files: Optional[ChannelSet], user: str, name: str) -> bool:
    if files is None:
        return False
    return any(d.channel_key == f"{user}/{name}" for d in files.of(user))


def _ensure_free(session: Session, files: Optional[ChannelSet], user: str, name: str,
                 exclude_id: Optional[int] = None) -> None:
    if _taken_by_file(files, user, name):
        raise ChannelConflict(f"{user} already has a channel named {name!r} in the channel files")
    query = select(ChannelRecord.id).where(ChannelRecord.user == user, ChannelRecord.name == name)
    if exclude_id is not None:
        query = query.where(ChannelRecord.id != exclude_id)
    if session.execute(query).first() is not None:
        raise ChannelConflict(f"{user} already has a channel named {name!r}")


def create(store: Store, user: str, fields: dict, *, webhook_hosts: list[str], files: Optional[ChannelSet],
           now: float) -> ChannelRecord:
    """Store a new channel of ``user``. Raises ValidationError, ChannelProblem or ChannelConflict."""
    check_name(fields.get("name"))
    config = build_config(fields)
    check_config(config, webhook_hosts)
    settings, secrets = _split(config)
    logredact.register(*secrets.values())
    record = ChannelRecord(user=user, name=config.name, type=config.type, config=json.dumps(settings),
                           secrets=json.dumps(secrets), created_at=now, updated_at=now, etag=uuid.uuid4().hex)
    with Session(store.engine) as session:
        _ensure_free(session, files, user, config.name)
        session.add(record)
        try:
            session.commit()
        except IntegrityError:  # the same name made at the same moment by another request
            raise ChannelConflict(f"{user} already has a channel named {config.name!r}") from None
        session.refresh(record)
        return record


def update(store: Store, record: ChannelRecord, changes: dict, *, webhook_hosts: list[str],
           files: Optional[ChannelSet], now: float) -> ChannelRecord:
    """Apply ``changes`` (the fields given; None clears a field) to a channel. A secret not given is
    kept: it is write-only, so a client that read the channel cannot send it back."""
    if "type" in changes and changes["type"] != record.type:
        raise ChannelProblem("a channel's type cannot change (delete it and make another)", "type")
    if "name" in changes:
        check_name(changes["name"])
    fields = fields_of(record)
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    if isinstance(changes.get("channel"), str) and "webhook_url" not in changes:
        fields.pop("webhook_url", None)  # switching a Slack channel from webhook to chat.postMessage
    if changes.get("webhook_url") is not None and "channel" not in changes:
        fields.pop("channel", None)
    config = build_config(fields)
    check_config(config, webhook_hosts)
    settings, secrets = _split(config)
    logredact.register(*secrets.values())
    with Session(store.engine) as session:
        current = session.get(ChannelRecord, record.id)
        if current is None:
            raise LookupError(record.id)
        if config.name != current.name:
            _ensure_free(session, files, current.user, config.name, exclude_id=current.id)
        current.name, current.config, current.secrets = config.name, json.dumps(settings), json.dumps(secrets)
        current.updated_at, current.etag = now, uuid.uuid4().hex
        session.add(current)
        try:
            session.commit()
        except IntegrityError:
            raise ChannelConflict(f"{current.user} already has a channel named {config.name!r}") from None
        session.refresh(current)
        return current


def remove(store: Store, channel_id: int) -> bool:
    with store.engine.begin() as conn:
        return bool(conn.execute(delete(ChannelRecord).where(ChannelRecord.id == channel_id)).rowcount)


def get(store: Store, channel_id: int) -> Optional[ChannelRecord]:
    with Session(store.engine) as session:
        return session.get(ChannelRecord, channel_id)


def all_records(store: Store, user: Optional[str] = None) -> list[ChannelRecord]:
    """Every API channel (of ``user`` only, if given), oldest first."""
    query = select(ChannelRecord).order_by(ChannelRecord.id)
    if user is not None:
        query = query.where(ChannelRecord.user == user)
    with Session(store.engine) as session:
        return list(session.execute(query).scalars().all())


def user_exists(store: Store, name: str) -> bool:
    """Whether the server has a user ``name`` (an admin makes channels only for users that exist)."""
    with Session(store.engine) as session:
        return session.get(UserRecord, name) is not None


def fingerprint(store: Store) -> str:
    """Changes whenever a channel is made, changed or deleted: a digest of every row's id and etag
    (two short columns a row: cheap for the few channels users make)."""
    digest = hashlib.sha256()
    with store.engine.connect() as conn:
        for channel_id, etag in conn.execute(select(ChannelRecord.id, ChannelRecord.etag).order_by(ChannelRecord.id)):
            digest.update(f"{channel_id}:{etag};".encode())
    return digest.hexdigest()


def destinations(record: ChannelRecord) -> list[Destination]:
    """The destinations of a stored channel (an email channel with several addresses: one each)."""
    return destinations_of(record.user, [config_of(record)])


def problem_of(exc: ValidationError) -> list[dict]:
    """pydantic's errors as the API's 422 entries, without the input (it may be a secret)."""
    entries = []
    for error in exc.errors():
        loc = [part for part in error.get("loc", ()) if part not in ("slack", "email")]
        entries.append({"loc": ["body", *loc], "msg": str(error.get("msg", "")).removeprefix("Value error, "),
                        "type": error.get("type")})
    return entries
