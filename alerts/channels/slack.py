"""Slack: incoming webhooks and the Web API's ``chat.postMessage``, through slack-sdk.

Messages are Block Kit (a header, the alert text, fields for run/project/metric/value/step, a
context line) inside an attachment coloured by level, with a plain ``text`` fallback. Everything that
came from a user or a metric name is escaped (``&``, ``<``, ``>``), so an alert cannot mention
``<!channel>``; Slack's size limits are respected, and a group of alerts shows the first ones and
"+N more".

Errors are translated into :class:`DeliveryError` here: 429 waits its Retry-After, 5xx and network
errors retry, errors that will not go away (``invalid_payload``, ``channel_not_found``,
``invalid_auth``...) do not.
"""

from __future__ import annotations

import math
import ssl
import threading
import urllib.request
from typing import Any, Optional, Sequence

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from alerts import logredact
from alerts.channels.base import DeliveryError, Notification, format_value
from alerts.channels.keepalive import KeepAliveWebhookClient
from alerts.pipeline.incident import summarize

HEADER_MAX = 150  # plain_text in a header block
SECTION_MAX = 3000  # mrkdwn text in a section
FIELD_MAX = 2000
FALLBACK_MAX = 3000
SHOWN_IN_GROUP = 10  # alerts listed in a grouped message before "+N more"
COLOURS = {"ERROR": "#d93025", "WARN": "#f9ab00", "INFO": "#1a73e8", "resolved": "#188038"}
ICONS = {"ERROR": ":red_circle:", "WARN": ":large_orange_circle:", "INFO": ":large_blue_circle:",
         "resolved": ":white_check_mark:"}

# Web API errors that retrying cannot fix (https://api.slack.com/methods/chat.postMessage#errors).
PERMANENT_API_ERRORS = frozenset({
    "channel_not_found", "invalid_auth", "not_authed", "not_in_channel", "is_archived", "msg_too_long",
    "no_text", "invalid_blocks", "invalid_attachments", "account_inactive", "token_revoked", "token_expired",
    "missing_scope", "restricted_action", "user_not_found", "cannot_dm_bot", "invalid_arguments",
    "too_many_attachments", "invalid_blocks_format", "ekm_access_denied", "team_access_not_granted",
})


def escape(text: Any) -> str:
    """Slack's escaping for text from users: ``&``, ``<`` and ``>`` (so ``<!channel>`` is inert)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tone(n: Notification) -> str:
    return "resolved" if n.status == "resolved" else n.level


def _headline(n: Notification) -> str:
    prefix = "RESOLVED " if n.status == "resolved" else ""
    return f"[{n.level}] {prefix}{n.title}"


def build_message(group: list[Notification], server_url: Optional[str] = None,
                  earlier: Sequence[Notification] = ()) -> dict:
    """``text``, and ``attachments`` holding the blocks, for one message about ``group`` (>= 1 alert).

    ``earlier``: the alerts of the same incident that the group's previous messages carried. When the
    incident spans several runs, the message says so first ("12 runs of sweep-1 failed") and lists them.
    """
    first = group[0]
    more = len(group) - 1
    incident = summarize(group, earlier)
    title = _headline(first) + (f" (+{more} more)" if more else "")
    if incident.many_runs:
        title = f"[{first.level}] {incident.headline}"
    # Escaped even in plain_text: Slack decodes the entities there too, and nothing from a user may
    # reach Slack as markup.
    blocks: list[dict] = [{"type": "header",
                           "text": {"type": "plain_text", "text": clip(escape(title), HEADER_MAX), "emoji": True}}]
    if incident.many_runs:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(
            f"*{len(incident.runs)} runs:* {escape(incident.run_list())}", SECTION_MAX)}})
    if not more and not incident.many_runs:
        if first.text:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(escape(first.text), SECTION_MAX)}})
        fields = [("Run", first.run_name), ("Project", first.project)]
        if first.metric is not None:
            fields += [("Metric", first.metric), ("Value", format_value(first.value))]
        if first.step is not None:
            fields.append(("Step", first.step))
        blocks.append({"type": "section", "fields": [
            {"type": "mrkdwn", "text": clip(f"*{name}*\n{escape(value)}", FIELD_MAX)} for name, value in fields]})
    else:
        lines = ["*New in this message:*"] if earlier else []
        for n in group[:SHOWN_IN_GROUP]:
            detail = f" ({escape(n.metric)} = {format_value(n.value)})" if n.metric is not None else ""
            lines.append(f"{ICONS[_tone(n)]} *{escape(clip(_headline(n), 200))}* in {escape(n.run_name)}{detail}")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(lines), SECTION_MAX)}})
        if len(group) > SHOWN_IN_GROUP:
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"+{len(group) - SHOWN_IN_GROUP} more"}]})
    context = f"{first.source}" + (f" rule {escape(first.rule)}" if first.rule else "") + f" · owner {escape(first.owner)}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": clip(context, FIELD_MAX)}]})
    if server_url:
        url = f"{server_url.rstrip('/')}/runs/{first.run_id}"
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open run"}, "url": url}]})
    if incident.many_runs:
        fallback = escape(f"{title}: {incident.run_list()}")
    else:
        fallback = escape(title) + (f": {escape(first.text)}" if first.text and not more else "")
    return {"text": clip(fallback, FALLBACK_MAX),
            "attachments": [{"color": COLOURS[_tone(first)], "blocks": blocks}]}


def _retry_after(headers: Any) -> Optional[float]:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if key.lower() == "retry-after":
            value = value[0] if isinstance(value, list) else value
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


_tls_context: Optional[ssl.SSLContext] = None
_tls_lock = threading.Lock()


def _tls_for(url: str) -> Optional[ssl.SSLContext]:
    """The verifying TLS context for an https URL (None for plain http, allowed on loopback only).

    One for the process, made once: loading the system's CA certificates takes ~100 ms here, and
    without a context urllib loads them again for every message."""
    global _tls_context
    if not url.lower().startswith("https:"):
        return None
    with _tls_lock:
        if _tls_context is None:
            _tls_context = ssl.create_default_context()
        return _tls_context


def warm_http() -> None:
    """Pay urllib's first-use costs now (its first opener takes ~6 ms, later ones ~0.5 ms), not
    on the first message."""
    urllib.request.build_opener()


class SlackWebhook:
    """Sends to an incoming webhook. The URL is a secret: it is never put in an error or a log."""

    def __init__(self, url: str, timeout: float = 10.0, server_url: Optional[str] = None) -> None:
        logredact.register(url)  # slack_sdk logs the URL of every request at DEBUG
        # No retry handlers: the outbox decides about retries, durably. One TLS context (_tls_for).
        # One connection, kept open between messages (alerts/channels/keepalive.py).
        self._client = KeepAliveWebhookClient(url, timeout=int(math.ceil(timeout)), retry_handlers=[], ssl=_tls_for(url),
                                     logger=logredact.guarded_logger(logredact.SLACK_WEBHOOK_LOGGER))
        self._server_url = server_url

    def connect(self, timeout: float = 1.0) -> bool:
        """Open the webhook's connection ahead of the first message (at ``init()``); False if it
        could not be opened within ``timeout`` seconds."""
        return self._client.connect(timeout)

    def send_group(self, notifications: list[Notification], earlier: Sequence[Notification] = ()) -> Optional[str]:
        message = build_message(notifications, self._server_url, earlier)
        try:
            response = self._client.send(text=message["text"], attachments=message["attachments"])
        except Exception as exc:  # network, timeout: Slack may be fine in a moment
            raise DeliveryError(f"webhook not reached: {type(exc).__name__}", recoverable=True) from None
        status, body = response.status_code, (response.body or "").strip()
        if status == 200:
            return None
        if status == 429:
            raise DeliveryError("webhook rate limited (429)", recoverable=True,
                                retry_after=_retry_after(response.headers) or 1.0)
        if status >= 500:
            raise DeliveryError(f"webhook answered {status}", recoverable=True)
        raise DeliveryError(f"webhook answered {status} {clip(body, 100)}", recoverable=False)


class SlackApi:
    """Sends with ``chat.postMessage`` to a channel (``#name`` or an id) or a user id, as the bot."""

    def __init__(self, token: str, channel: str, base_url: str = "https://slack.com/api/",
                 timeout: float = 10.0, server_url: Optional[str] = None) -> None:
        logredact.register(token)
        self._client = WebClient(token=token, base_url=base_url, timeout=int(math.ceil(timeout)), retry_handlers=[],
                                 ssl=_tls_for(base_url),
                                 logger=logredact.guarded_logger(logredact.SLACK_WEB_LOGGER))
        self._channel = channel
        self._server_url = server_url

    def send_group(self, notifications: list[Notification], earlier: Sequence[Notification] = ()) -> Optional[str]:
        message = build_message(notifications, self._server_url, earlier)
        try:
            response = self._client.chat_postMessage(channel=self._channel, text=message["text"],
                                                     attachments=message["attachments"])
        except SlackApiError as exc:
            status = exc.response.status_code
            error = (exc.response.data or {}).get("error", "") if isinstance(exc.response.data, dict) else ""
            if status == 429 or error == "ratelimited":
                raise DeliveryError("chat.postMessage rate limited (429)", recoverable=True,
                                    retry_after=_retry_after(exc.response.headers) or 1.0) from None
            if status >= 500:
                raise DeliveryError(f"chat.postMessage answered {status}", recoverable=True) from None
            raise DeliveryError(f"chat.postMessage: {error or status}",
                                recoverable=error not in PERMANENT_API_ERRORS and status < 400) from None
        except Exception as exc:
            raise DeliveryError(f"chat.postMessage not reached: {type(exc).__name__}", recoverable=True) from None
        return str(response.get("ts") or "") or None
