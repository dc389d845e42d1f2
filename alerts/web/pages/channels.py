"""My channels (``/channels``): the user's channels as ``GET /api/v1/channels`` lists them (those made
through the API, editable, beside the read-only ones of the channel files), a form to add a Slack or
email channel, edit and remove (after a confirmation) one of the API's; "Send a test" is the page's
script calling ``POST /api/v1/channels/{id}/test``.

Every read and change goes through the API's own route functions with the session's Principal
(alerts/server/routes/channels.py): the same checks, the same visibility (another user's channel is a
404), the same masking. A webhook URL is write-only: the forms never carry it back (an empty field
on the edit form keeps it).
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData

from alerts.server import channelstore
from alerts.server.routes import channels as api
from alerts.server.sessions import WebSession
from alerts.web.pageauth import page_session, posted_form
from alerts.web.render import render

router = APIRouter(include_in_schema=False)

LEVELS = ("INFO", "WARN", "ERROR")
KINDS = {"webhook": "Slack, incoming webhook", "bot": "Slack, a channel (the server's bot token)",
         "email": "Email"}
NOTICES = {"added": "Channel added.", "updated": "Channel saved.", "removed": "Channel removed."}
_ADDRESS_SPLIT = re.compile(r"[\s,;]+")


def masked(channel: api.ChannelOut) -> Optional[str]:
    """A webhook as the page shows it: its host and a mask (``hooks.slack.com/…•••• set``); never the
    path, which is the secret (the API gives only the host already)."""
    if channel.webhook_url is None:
        return None
    return f"{urlsplit(channel.webhook_url).hostname or '?'}/\u2026\u2022\u2022\u2022\u2022 set"


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _addresses(text: str):
    """The ``to`` field: one address, or a list of several (commas, spaces or lines between)."""
    found = [part for part in _ADDRESS_SPLIT.split(text) if part]
    return found[0] if len(found) == 1 else found


def problems_of(exc: Exception) -> list[str]:
    """What a refused change says, field by field (never the input: it may be the secret)."""
    if isinstance(exc, (RequestValidationError, ValidationError)):
        entries = exc.errors() if isinstance(exc, RequestValidationError) else channelstore.problem_of(exc)
        out = []
        for entry in entries:
            where = [str(part) for part in entry.get("loc", ()) if part not in ("body", "slack", "email")]
            message = str(entry.get("msg", "")).removeprefix("Value error, ")
            if where and where[0] == "name" and "pattern" in message:
                message = f"must be {channelstore.NAME_RULE}"  # the rule in words, not the regex
            out.append(f"{where[0].replace('_', ' ')}: {message}" if where else message)
        return out
    if isinstance(exc, HTTPException):
        return [str(exc.detail)]
    return [str(exc)]


def _listing(request: Request, session: WebSession) -> list[api.ChannelOut]:
    return api.list_channels(request, None, session.principal).items


def _page(request: Request, session: WebSession, *, problems: Optional[list[str]] = None,
          entered: Optional[dict] = None):
    notice = NOTICES.get(request.query_params.get("done", ""))
    return render(request, "channels.html", session, channels=_listing(request, session), masked=masked,
                  levels=LEVELS, kinds=KINDS, notice=notice, problems=problems or [], entered=entered or {})


@router.get("/channels")
def channels_page(request: Request, session: WebSession = Depends(page_session)):
    return _page(request, session)


def new_channel_body(form: FormData) -> dict:
    """The API's body for a new channel from the add form (``kind``: webhook, bot or email)."""
    kind = _text(form, "kind")
    body = {"name": _text(form, "name"), "min_level": _text(form, "min_level") or "INFO"}
    if kind == "webhook":
        body.update(type="slack", webhook_url=_text(form, "webhook_url"))
    elif kind == "bot":
        body.update(type="slack", channel=_text(form, "channel"))
    elif kind == "email":
        body.update(type="email", to=_addresses(_text(form, "to")))
    else:
        raise ValueError("choose Slack (webhook), Slack (a channel) or email")
    return body


@router.post("/channels")
async def add_channel(request: Request, posted=Depends(posted_form)):
    session, form = posted
    # What the form shows again if the channel is refused: never the webhook URL.
    entered = {key: _text(form, key) for key in ("kind", "name", "min_level", "channel", "to")}
    try:
        body = TypeAdapter(api.ChannelIn).validate_python(new_channel_body(form))
        api.create_channel(request, body, None, session.principal)
    except (ValueError, HTTPException, RequestValidationError) as exc:  # ValidationError is a ValueError
        # 200, not 422: the form again with the reasons (a browser logs a 4xx page as a console error).
        return _page(request, session, problems=problems_of(exc), entered=entered)
    return RedirectResponse("/channels?done=added", status_code=303)


def _found(request: Request, session: WebSession, channel_id: str, *, to_change: bool = True):
    """The session's channel ``channel_id`` (an admin: anyone's), or the page that says why not: not
    found, or (``to_change``) read-only because it comes from a channel file."""
    try:
        channel = api.get_channel(request, channel_id, session.principal)
    except HTTPException as exc:
        return None, render(request, "manage_message.html", session, status_code=exc.status_code,
                            heading="No such channel", message=str(exc.detail), back="/channels")
    if to_change and channel.read_only:
        return None, render(request, "manage_message.html", session, status_code=409, heading="Read-only channel",
                            message=f"{channel.name} comes from the channel file {channel.file or ''}: "
                                    "change it there.", back="/channels")
    return channel, None


@router.get("/channels/{channel_id}/edit")
def edit_page(request: Request, channel_id: str, session: WebSession = Depends(page_session)):
    channel, missing = _found(request, session, channel_id)
    if missing is not None:
        return missing
    return render(request, "channel_edit.html", session, channel=channel, masked=masked, levels=LEVELS, problems=[])


def changes_of(channel: api.ChannelOut, form: FormData) -> dict:
    """The API's patch from the edit form: an empty webhook field keeps the stored URL."""
    changes = {"name": _text(form, "name"), "min_level": _text(form, "min_level") or channel.min_level}
    if channel.type == "slack":
        if channel.webhook_url is not None:
            if _text(form, "webhook_url"):
                changes["webhook_url"] = _text(form, "webhook_url")
        else:
            changes["channel"] = _text(form, "channel")
    else:
        changes["to"] = _addresses(_text(form, "to"))
    return changes


@router.post("/channels/{channel_id}/edit")
async def edit_channel(request: Request, channel_id: str, posted=Depends(posted_form)):
    session, form = posted
    channel, missing = _found(request, session, channel_id)
    if missing is not None:
        return missing
    try:
        api.update_channel(request, channel_id, api.ChannelPatch.model_validate(changes_of(channel, form)),
                           session.principal)
    except (ValueError, HTTPException, RequestValidationError) as exc:
        return render(request, "channel_edit.html", session, channel=channel, masked=masked, levels=LEVELS,
                      problems=problems_of(exc))
    return RedirectResponse("/channels?done=updated", status_code=303)


@router.get("/channels/{channel_id}/remove")
def remove_page(request: Request, channel_id: str, session: WebSession = Depends(page_session)):
    """The confirmation step: what removing the channel does, and the button that does it."""
    channel, missing = _found(request, session, channel_id)
    if missing is not None:
        return missing
    return render(request, "channel_remove.html", session, channel=channel, masked=masked)


@router.post("/channels/{channel_id}/remove")
async def remove_channel(request: Request, channel_id: str, posted=Depends(posted_form)):
    session, _ = posted
    channel, missing = _found(request, session, channel_id)
    if missing is not None:
        return missing
    try:
        api.delete_channel(request, channel_id, session.principal)
    except HTTPException as exc:
        return render(request, "manage_message.html", session, status_code=exc.status_code,
                      heading="Not removed", message=str(exc.detail), back="/channels")
    return RedirectResponse("/channels?done=removed", status_code=303)
