"""``/api/v1/channels``: the caller's channels. Those made through the API can be changed, deleted and
tested; those of ``channels/*.yaml`` are shown beside them, read-only (``source: file``), and can be
tested. Secrets are write-only: a webhook URL is never returned, only its host.

Ids are strings: an API channel's number (``"12"``), or ``file-<hash of its key>`` for a file channel.
Another user's channel is a 404, as if it did not exist; an admin sees everyone's (``?user=``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal, Optional, Union

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from alerts.channels.config import Destination, EmailChannel, SlackChannel
from alerts.server import channelstore, channeltest
from alerts.server.accounts import Principal
from alerts.server.auth import current_user, not_found, require_visible
from alerts.server.channelstore import NAME

router = APIRouter(tags=["channels"])

Level = Literal["INFO", "WARN", "ERROR"]
Address = Annotated[str, Field(min_length=3, max_length=320)]
Addresses = Annotated[list[Address], Field(min_length=1, max_length=100)]
NamePattern = NAME.pattern


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlackIn(_Body):
    """A Slack channel: an incoming webhook (``webhook_url``, a secret) or a channel for chat.postMessage
    with the server's bot token (``channel``)."""

    type: Literal["slack"]
    name: str = Field(pattern=NamePattern, description="unique among your channels; deliveries are filed under user/name")
    min_level: Level = "INFO"
    webhook_url: Optional[SecretStr] = Field(default=None, max_length=2048, json_schema_extra={"writeOnly": True})
    channel: Optional[str] = Field(default=None, min_length=1, max_length=200)


class EmailIn(_Body):
    """Email to one address or several (one delivery each)."""

    type: Literal["email"]
    name: str = Field(pattern=NamePattern)
    min_level: Level = "INFO"
    to: Union[Address, Addresses] = Field(description="an address or a list of addresses")


ChannelIn = Annotated[Union[SlackIn, EmailIn], Field(discriminator="type")]


class ChannelPatch(_Body):
    """The fields to change; a field left out is kept (a webhook URL too: it is never read back), and
    ``null`` clears an optional one."""

    name: Optional[str] = Field(default=None, pattern=NamePattern)
    min_level: Optional[Level] = None
    webhook_url: Optional[SecretStr] = Field(default=None, max_length=2048, json_schema_extra={"writeOnly": True})
    channel: Optional[str] = Field(default=None, min_length=1, max_length=200)
    to: Optional[Union[Address, Addresses]] = None


class ChannelOut(BaseModel):
    id: str
    user: str
    name: str
    key: str = Field(description="what deliveries to this channel are filed under")
    type: str
    min_level: str
    source: Literal["api", "file"]
    read_only: bool
    channel: Optional[str] = None
    to: Optional[list[str]] = None
    webhook_url: Optional[str] = Field(default=None, description="masked: the host only; the URL is write-only")
    file: Optional[str] = Field(default=None, description="the channel file (source file)")
    created_at: Optional[float] = None
    updated_at: Optional[float] = None
    in_use: bool = True
    problem: Optional[str] = Field(default=None, description="why the channel is not used, when it is not")


class ChannelList(BaseModel):
    items: list[ChannelOut]


class TestResult(BaseModel):
    destination: str
    ok: bool
    error: Optional[str] = None
    retryable: Optional[bool] = None


class TestAnswer(BaseModel):
    channel: str
    results: list[TestResult]


def _registry(request: Request):
    return request.app.state.server_channels


def file_id(channel_key: str) -> str:
    return "file-" + hashlib.sha256(channel_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _file_view(user: str, parts: list[Destination], path: Optional[str]) -> ChannelOut:
    """One file channel (an email channel with several addresses comes as one destination each)."""
    first = parts[0]
    config = first.config
    name = first.channel_key.split("/", 1)[1]
    view = ChannelOut(id=file_id(first.channel_key), user=user, name=name, key=first.channel_key, type=config.type,
                      min_level=config.min_level, source="file", read_only=True, file=path)
    if isinstance(config, SlackChannel):
        view.channel = config.channel
        view.webhook_url = channelstore.masked_webhook(config.webhook_url)
    elif isinstance(config, EmailChannel):
        view.to = [address for part in parts for address in part.config.to]
    return view


def _api_view(record, problem: Optional[str]) -> ChannelOut:
    fields = channelstore.fields_of(record, with_secrets=False)
    secrets = channelstore.fields_of(record)
    to = fields.get("to")
    return ChannelOut(id=str(record.id), user=record.user, name=record.name, key=f"{record.user}/{record.name}",
                      type=record.type, min_level=fields.get("min_level", "INFO"), source="api", read_only=False,
                      channel=fields.get("channel"), to=[to] if isinstance(to, str) else to,
                      webhook_url=channelstore.masked_webhook(secrets.get("webhook_url")),
                      created_at=record.created_at, updated_at=record.updated_at,
                      in_use=problem is None, problem=problem)


def _file_channels(registry, user: Optional[str]) -> list[ChannelOut]:
    files = registry.files
    if files is None:
        return []
    # load_channels appends a file and its user together, so the two line up in order.
    file_of = dict(zip(files.users, files.files))
    views = []
    for owner, destinations in sorted(files.users.items()):
        if user is not None and owner != user:
            continue
        grouped: dict[str, list[Destination]] = {}
        for destination in destinations:
            grouped.setdefault(destination.channel_key, []).append(destination)
        path = file_of.get(owner)
        views += [_file_view(owner, parts, path.name if path else None) for parts in grouped.values()]
    return views


def _visible_user(caller: Principal, user: Optional[str]) -> Optional[str]:
    """Whose channels to list: the caller's own; an admin's choice (None: everyone's)."""
    if caller.is_admin:
        return user
    if user is not None and user != caller.name:
        return "\0nobody"  # another user's: an empty list, as if they had none
    return caller.name


@router.get("/channels", response_model=ChannelList, summary="Your channels: made through the API, and from the channel files")
def list_channels(request: Request, user: Optional[str] = Query(None, max_length=64, description="admins: whose channels"),
                  caller: Principal = Depends(current_user)) -> ChannelList:
    registry = _registry(request)
    whose = _visible_user(caller, user)
    items = _file_channels(registry, whose)
    items += [_api_view(r, registry.shadowed.get(r.id)) for r in channelstore.all_records(registry.store, whose)]
    return ChannelList(items=items)


def _api_record(request: Request, caller: Principal, channel_id: str):
    if not channel_id.isdigit() or len(channel_id) > 18:
        raise not_found("channel", channel_id)
    record = channelstore.get(_registry(request).store, int(channel_id))
    require_visible(caller, record.user if record else None, "channel", channel_id)
    return record


def _find(request: Request, caller: Principal, channel_id: str) -> ChannelOut:
    registry = _registry(request)
    if channel_id.startswith("file-"):
        for view in _file_channels(registry, None if caller.is_admin else caller.name):
            if view.id == channel_id:
                return view
        raise not_found("channel", channel_id)
    record = _api_record(request, caller, channel_id)
    return _api_view(record, registry.shadowed.get(record.id))


@router.get("/channels/{channel_id}", response_model=ChannelOut, summary="One of your channels")
def get_channel(request: Request, channel_id: str, caller: Principal = Depends(current_user)) -> ChannelOut:
    return _find(request, caller, channel_id)


def _unprocessable(entries: list[dict]) -> RequestValidationError:
    return RequestValidationError(entries)


def _refused(exc: Exception) -> Exception:
    """The HTTP answer for a channel that cannot be stored."""
    if isinstance(exc, ValidationError):
        return _unprocessable(channelstore.problem_of(exc))
    if isinstance(exc, channelstore.ChannelConflict):
        return HTTPException(status.HTTP_409_CONFLICT, str(exc))
    field = getattr(exc, "field", None)
    return _unprocessable([{"loc": ["body", field] if field else ["body"], "msg": str(exc), "type": "value_error"}])


def _plain(body: BaseModel, **kw) -> dict:
    """A body's fields with secrets as plain strings (to validate and store; never to return)."""
    data = body.model_dump(**kw)
    for key, value in data.items():
        if isinstance(value, SecretStr):
            data[key] = value.get_secret_value()
    return data


@router.post("/channels", response_model=ChannelOut, status_code=status.HTTP_201_CREATED,
             summary="Make a channel (yours; an admin may make one for another user with ?user=)")
def create_channel(request: Request, body: ChannelIn, user: Optional[str] = Query(None, max_length=64),
                   caller: Principal = Depends(current_user)) -> ChannelOut:
    owner = caller.name
    if user is not None and user != caller.name:
        if not caller.is_admin:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin makes channels for another user")
        if not channelstore.user_exists(request.app.state.store, user):
            raise _unprocessable([{"loc": ["query", "user"], "msg": f"no user {user!r} (alerts users add {user})",
                                   "type": "value_error"}])
        owner = user
    registry = _registry(request)
    try:
        record = channelstore.create(registry.store, owner, _plain(body, exclude_none=True),
                                     webhook_hosts=registry.webhook_hosts, files=registry.files,
                                     now=request.app.state.clock())
    except (ValidationError, channelstore.ChannelProblem, channelstore.ChannelConflict) as exc:
        raise _refused(exc) from None
    registry.refresh()
    return _api_view(record, registry.shadowed.get(record.id))


@router.patch("/channels/{channel_id}", response_model=ChannelOut, summary="Change one of your API channels")
def update_channel(request: Request, channel_id: str, body: ChannelPatch,
                   caller: Principal = Depends(current_user)) -> ChannelOut:
    if channel_id.startswith("file-"):
        _find(request, caller, channel_id)  # 404 if it is not the caller's
        raise HTTPException(status.HTTP_409_CONFLICT, "this channel comes from a channel file: change the file")
    record = _api_record(request, caller, channel_id)
    registry = _registry(request)
    try:
        record = channelstore.update(registry.store, record, _plain(body, exclude_unset=True),
                                     webhook_hosts=registry.webhook_hosts, files=registry.files,
                                     now=request.app.state.clock())
    except LookupError:
        raise not_found("channel", channel_id) from None
    except (ValidationError, channelstore.ChannelProblem, channelstore.ChannelConflict) as exc:
        raise _refused(exc) from None
    registry.refresh()
    return _api_view(record, registry.shadowed.get(record.id))


@router.delete("/channels/{channel_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete one of your API channels")
def delete_channel(request: Request, channel_id: str, caller: Principal = Depends(current_user)) -> None:
    if channel_id.startswith("file-"):
        _find(request, caller, channel_id)
        raise HTTPException(status.HTTP_409_CONFLICT, "this channel comes from a channel file: change the file")
    record = _api_record(request, caller, channel_id)
    registry = _registry(request)
    if not channelstore.remove(registry.store, record.id):
        raise not_found("channel", channel_id)
    registry.refresh()


@router.post("/channels/{channel_id}/test", response_model=TestAnswer,
             summary="Send a test message to one of your channels, now (not through the outbox)")
def test_channel(request: Request, channel_id: str, caller: Principal = Depends(current_user)) -> TestAnswer:
    view = _find(request, caller, channel_id)
    registry = _registry(request)
    destinations = [d for d in registry.channels.of(view.user) if d.channel_key == view.key]
    if not destinations:
        raise HTTPException(status.HTTP_409_CONFLICT, f"channel {view.key!r} is not in use: {view.problem or 'unknown'}")
    results = channeltest.send_test(destinations, request.app.state.settings, view.user, request.app.state.clock())
    return TestAnswer(channel=view.key, results=[TestResult(**r) for r in results])
