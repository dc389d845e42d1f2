"""A fake Slack on 127.0.0.1: incoming webhooks and the few Web API methods that alerts use.

It is a real HTTP server (``http.server.ThreadingHTTPServer`` on an ephemeral port) that answers the
way Slack does, so the real ``slack_sdk`` clients can be pointed at it:

* incoming webhooks — ``POST /services/<T>/<B>/<X>`` with a JSON (or ``payload=`` form) body answers
  200 ``ok`` (``text/html``, as Slack sends it); the failures Slack documents answer with their status
  and a plain-text error (400 ``invalid_payload``, 403 ``action_prohibited``, 404 ``no_service``,
  410 ``channel_is_archived``, 429 ``rate_limited`` with ``Retry-After``, 500 with an HTML page);
* Web API — ``/api/chat.postMessage``, ``/api/auth.test``, ``/api/conversations.open`` and
  ``/api/api.test``, form or JSON, token in ``Authorization: Bearer`` (or a form ``token`` field).
  Errors are HTTP 200 with ``{"ok": false, "error": ...}`` (``not_authed``, ``invalid_auth``,
  ``channel_not_found``, ``not_in_channel``, ``is_archived``, ``no_text``, ``msg_too_long``,
  ``invalid_blocks``, ``unknown_method``), except rate limiting: HTTP 429, ``Retry-After: N`` and
  ``{"ok": false, "error": "ratelimited"}``.

Tests program it: :meth:`FakeSlack.fail_next`, :meth:`FakeSlack.fail_for` (on an injectable clock),
:meth:`FakeSlack.set_delay`, and an optional per-channel rate limit (a token bucket on the same
clock). Every request is recorded (token values never are).

    with FakeSlack() as slack:
        WebhookClient(slack.webhook_url("alerts")).send(text="hi")
        assert slack.messages("alerts") == [{"text": "hi"}]
"""

from __future__ import annotations

import json
import math
import socket
import socketserver
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Mapping, Optional
from urllib.parse import parse_qs, urlsplit

Clock = Callable[[], float]

DEFAULT_TOKEN = "xoxb-fake-token"
TEAM_ID = "T000"
TEAM_NAME = "Fake Team"
BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
MAX_TEXT_CHARS = 40_000  # chat.postMessage answers msg_too_long past this
MAX_BLOCKS = 50  # more blocks than this: invalid_blocks
MAX_ATTACHMENTS = 100  # more than this: too_many_attachments

#: The HTTP status Slack answers an incoming-webhook error with (Slack's incoming-webhook docs).
WEBHOOK_ERROR_STATUS: dict[str, int] = {
    "invalid_payload": 400,
    "user_not_found": 400,
    "no_text": 400,
    "invalid_blocks": 400,
    "too_many_attachments": 400,
    "no_service_id": 400,
    "action_prohibited": 403,
    "posting_to_general_channel_denied": 403,
    "invalid_token": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "no_team": 404,
    "channel_is_archived": 410,
    "team_disabled": 410,
    "rate_limited": 429,
    "rollup_error": 500,
}
#: The error a webhook answers when a test asks only for a status.
WEBHOOK_STATUS_ERROR: dict[int, str] = {
    400: "invalid_payload",
    403: "action_prohibited",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
}

HTML_ERROR = (
    "<!DOCTYPE html>\n<html><head><title>{status} {reason}</title></head>\n"
    "<body><h1>{status} {reason}</h1><p>Slack is having trouble right now. Try again later.</p>"
    "</body></html>\n"
)
REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
JSON_TYPE = "application/json; charset=utf-8"


@dataclass
class SlackRequest:
    """One request the fake received, and what it answered."""

    method: str
    path: str
    kind: str  # "webhook", "api" or "other"
    headers: dict[str, str]  # as sent, with the Authorization value's token replaced by "<redacted>"
    body: Any  # parsed JSON / form (dict), or None when it could not be parsed
    raw: bytes
    time: float  # the fake's clock when the request arrived
    api_method: Optional[str] = None  # e.g. "chat.postMessage"
    webhook: Optional[str] = None  # the last path segment of a webhook URL
    channel: Optional[str] = None  # resolved channel id (Web API) or webhook name
    authorized: Optional[bool] = None  # Web API: a valid token was sent; None for webhooks
    status: Optional[int] = None
    error: Optional[str] = None  # the Slack error string answered, if any
    retry_after: Optional[int] = None
    response: bytes = b""
    delivered: bool = False  # a message was posted (it shows up in FakeSlack.messages)
    injected: bool = False  # the answer came from fail_next / fail_for
    rate_limited: bool = False  # the answer was the fake's own rate limit
    delay: float = 0.0
    targets: frozenset = field(default_factory=frozenset)  # names this request can be matched by


@dataclass
class _Failure:
    target: Optional[str]
    status: Optional[int]
    error: Optional[str]
    retry_after: Optional[int]
    body: Optional[str | bytes]
    remaining: Optional[int]  # None: until cleared / until the window ends
    start: Optional[float] = None
    until: Optional[float] = None


@dataclass
class _Channel:
    id: str
    name: str
    member: bool = True
    archived: bool = False


@dataclass
class _Bucket:
    tokens: float
    last: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, handler, fake: "FakeSlack"):
        self.fake = fake
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind would call socket.getfqdn(): a reverse lookup we do not need.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeSlack/1.0"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection is dropped after this

    def setup(self):
        super().setup()
        self.server.fake._track(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.fake._untrack(self.connection)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 - quiet: the fake records requests itself
        pass

    def _serve(self):
        self.server.fake._serve(self)

    do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve


class FakeSlack:
    """A Slack stand-in on 127.0.0.1. Use as a context manager, or call :meth:`start` / :meth:`stop`.

    :param tokens: bot tokens the Web API accepts (the first is :attr:`token`).
    :param channels: known channels, ``{name: id}`` (or names only: ids are made up). Unknown channels
        answer ``channel_not_found``. Use :meth:`add_channel` for archived / not-a-member channels.
    :param users: user ids (``U...``) that ``conversations.open`` and DMs accept.
    :param webhooks: webhook names (last URL segment) that exist; ``None`` accepts any name.
    :param clock: seconds, monotonic; drives ``fail_for`` windows, the rate limit and ``time`` stamps.
    :param rate_limit_per_channel: if set, messages per second allowed per channel / webhook; more
        answer 429 with ``Retry-After`` (token bucket holding ``burst`` messages).
    """

    def __init__(
        self,
        *,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        channels: Mapping[str, str] | Iterable[str] | None = None,
        users: Iterable[str] = ("U123",),
        webhooks: Optional[Iterable[str]] = None,
        clock: Clock = time.monotonic,
        rate_limit_per_channel: Optional[float] = None,
        burst: float = 1.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.tokens = list(tokens)
        if not self.tokens:
            raise ValueError("FakeSlack needs at least one valid token")
        self.clock = clock
        self.rate_limit_per_channel = rate_limit_per_channel
        self.burst = float(burst)
        if rate_limit_per_channel is not None and (rate_limit_per_channel <= 0 or burst < 1):
            raise ValueError("rate_limit_per_channel must be > 0 and burst >= 1")
        self.host = host
        self.port: Optional[int] = None
        self.webhooks = None if webhooks is None else set(webhooks)

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[SlackRequest] = []
        self._failures: list[_Failure] = []
        self._delays: dict[Optional[str], float] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._channels: dict[str, _Channel] = {}  # by id
        self._users: set[str] = set()
        self._ts_counter = 0
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self.connections_accepted = 0  # TCP connections the fake accepted (keep-alive reuses one)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

        if channels is None:
            channels = {"alerts": "C123"}
        if isinstance(channels, Mapping):
            for name, cid in channels.items():
                self.add_channel(name, cid)
        else:
            for name in channels:
                self.add_channel(name)
        for user in users:
            self.add_user(user)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeSlack":
        if self._server is not None:
            raise RuntimeError("FakeSlack already started")
        self._stopping.clear()
        self._server = _Server((self.host, self.port or 0), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"FakeSlack:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a delay
        server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # drop keep-alive connections so their threads end
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def drop_connections(self) -> None:
        """Close every open connection from the server's side, as a server does with idle
        keep-alive connections (Slack's, after a while)."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "FakeSlack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self.port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``: what ``slack_sdk.WebClient(base_url=...)`` takes."""
        return f"{self.url}/api/"

    def webhook_url(self, name: str = "alerts", *, team: str = TEAM_ID, bot: str = "B000") -> str:
        """``http://127.0.0.1:PORT/services/T000/B000/<name>``; ``name`` identifies the webhook."""
        return f"{self.url}/services/{team}/{bot}/{name}"

    @property
    def token(self) -> str:
        """The (first) bot token the Web API accepts."""
        return self.tokens[0]

    # ------------------------------------------------------------------ workspace set-up

    def add_channel(self, name: str, id: Optional[str] = None, *, member: bool = True,
                    archived: bool = False) -> str:
        """Make a channel known (or change it); returns its id. ``member=False``: not_in_channel."""
        name = name.lstrip("#")
        with self._lock:
            for ch in self._channels.values():
                if ch.name == name and (id is None or ch.id == id):
                    ch.member, ch.archived = member, archived
                    return ch.id
            cid = id or f"C{124 + len(self._channels):03d}FAKE"
            self._channels[cid] = _Channel(cid, name, member, archived)
            return cid

    def add_user(self, user_id: str) -> str:
        """Make a user known; returns the id of the bot's DM channel with them."""
        with self._lock:
            self._users.add(user_id)
        return self.dm_channel(user_id)

    @staticmethod
    def dm_channel(user_id: str) -> str:
        """The DM channel id that ``conversations.open`` answers for ``user_id``."""
        return "D" + user_id[1:]

    # ------------------------------------------------------------------ programming failures

    def fail_next(self, target: Optional[str] = None, *, status: Optional[int] = None,
                  error: Optional[str] = None, times: Optional[int] = 1, retry_after: Optional[int] = None,
                  body: Optional[str | bytes] = None) -> None:
        """Answer the next ``times`` requests to ``target`` with a failure (``times=None``: until cleared).

        ``target`` is a webhook name (or its path; ``"webhook"`` matches every webhook), a channel (id,
        name or ``#name``), a Web API method (``"chat.postMessage"``) or None for any request. Give a
        ``status``, an ``error`` or both:

        * webhook: ``error`` alone picks Slack's status for it (``no_service`` → 404 ...), ``status``
          alone picks the error (404 → ``no_service``); 5xx answers an HTML page;
        * Web API: ``error`` alone answers HTTP 200 ``{"ok": false, "error": error}``; 429 answers
          ``ratelimited``; 5xx an HTML page.

        429 answers carry ``Retry-After: retry_after`` (default 1). ``body`` overrides the body.
        """
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None)")
        with self._lock:
            self._failures.append(_Failure(target, status, error, retry_after, body, times))

    def fail_for(self, seconds: float, *, status: Optional[int] = 500, error: Optional[str] = None,
                 target: Optional[str] = None, retry_after: Optional[int] = None,
                 body: Optional[str | bytes] = None) -> None:
        """Fail every matching request for ``seconds`` of the fake's clock, from now."""
        now = self.clock()
        with self._lock:
            self._failures.append(_Failure(target, status, error, retry_after, body, None, now, now + seconds))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def set_delay(self, seconds: float, target: Optional[str] = None) -> None:
        """Hold every answer (to ``target``, or to all) for ``seconds`` of real time; 0 clears it.

        The request is processed first, as Slack would: a message whose answer a client timed out on
        has still been posted (it is in :meth:`messages`).
        """
        with self._lock:
            if seconds > 0:
                self._delays[target] = float(seconds)
            else:
                self._delays.pop(target, None)

    # ------------------------------------------------------------------ what happened

    @property
    def requests(self) -> list[SlackRequest]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def delivered(self, channel: Optional[str] = None) -> list[SlackRequest]:
        """The requests that posted a message (to ``channel``: id, name, ``#name`` or webhook name)."""
        with self._lock:
            keys = self._channel_keys(channel) if channel is not None else None
            return [r for r in self._requests if r.delivered and (keys is None or keys & r.targets)]

    def messages(self, channel: Optional[str] = None) -> list[dict]:
        """The payloads posted successfully (to ``channel``), oldest first.

        Webhook payloads are the JSON body as sent; Web API ones are the call's arguments (JSON or
        form, ``blocks`` / ``attachments`` decoded), without the token. A channel filter matches a
        webhook by its name and an API post by channel id, name or ``#name`` (a user id ``U...``
        matches the DM with that user).
        """
        return [r.body for r in self.delivered(channel)]

    @property
    def count_429(self) -> int:
        """How many 429 answers the fake has sent, injected or from its rate limit."""
        with self._lock:
            return sum(1 for r in self._requests if r.status == 429)

    def count(self, *, status: Optional[int] = None, kind: Optional[str] = None,
              target: Optional[str] = None) -> int:
        """How many requests match all the given filters."""
        with self._lock:
            keys = self._channel_keys(target) if target is not None else None
            return sum(
                1 for r in self._requests
                if (status is None or r.status == status) and (kind is None or r.kind == kind)
                and (keys is None or keys & r.targets)
            )

    def wait_for_messages(self, n: int, channel: Optional[str] = None, timeout: float = 5.0) -> list[dict]:
        """Block until at least ``n`` messages were delivered (to ``channel``); raise on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.messages(channel)
                if len(found) >= n:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(found)} of {n} Slack messages arrived within {timeout}s")
                self._changed.wait(left)

    def clear(self) -> None:
        """Forget the recorded requests and the rate-limit state (not channels or failures)."""
        with self._lock:
            self._requests.clear()
            self._buckets.clear()

    # ------------------------------------------------------------------ internals

    def _track(self, conn):
        with self._lock:
            self._conns.add(conn)
            self.connections_accepted += 1

    def _untrack(self, conn):
        with self._lock:
            self._conns.discard(conn)

    def _channel_keys(self, channel: str) -> set[str]:
        """Every name a channel filter may match a request by."""
        keys = {channel, channel.lstrip("#")}
        ch = self._find_channel(channel)
        if ch is not None:
            keys |= {ch.id, ch.name}
        return keys

    def _find_channel(self, value: str) -> Optional[_Channel]:
        with self._lock:
            if value in self._channels:
                return self._channels[value]
            name = value[1:] if value.startswith("#") else value
            for ch in self._channels.values():
                if ch.name == name:
                    return ch
            if value[:1] in ("U", "W") and value in self._users:  # posting to a user id: the bot's DM
                value = self.dm_channel(value)
            if value[:1] == "D" and any(prefix + value[1:] in self._users for prefix in ("U", "W")):
                ch = _Channel(value, value, member=True)
                self._channels[value] = ch
                return ch
            return None

    def _take_failure(self, targets: frozenset, now: float) -> Optional[_Failure]:
        with self._lock:
            for f in list(self._failures):
                if f.until is not None and now >= f.until:
                    self._failures.remove(f)
                    continue
                if f.start is not None and now < f.start:
                    continue
                if f.target is not None and f.target not in targets and f.target.lstrip("#") not in targets:
                    continue
                if f.remaining is not None:
                    f.remaining -= 1
                    if f.remaining <= 0:
                        self._failures.remove(f)
                return f
            return None

    def _rate_limit(self, key: str, now: float) -> Optional[int]:
        """None if a message to ``key`` may go now, else the Retry-After seconds."""
        rate = self.rate_limit_per_channel
        if rate is None:
            return None
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                b = self._buckets[key] = _Bucket(self.burst, now)
            b.tokens = min(self.burst, b.tokens + max(0.0, now - b.last) * rate)
            b.last = now
            if b.tokens >= 1.0 - 1e-9:
                b.tokens -= 1.0
                return None
            return max(1, math.ceil((1.0 - b.tokens) / rate - 1e-9))

    def _next_ts(self) -> str:
        with self._lock:
            self._ts_counter += 1
            micro = 100 + self._ts_counter - 1
        return f"{1_700_000_000 + micro // 1_000_000}.{micro % 1_000_000:06d}"

    def _delay_for(self, targets: frozenset) -> float:
        with self._lock:
            found = [s for t, s in self._delays.items() if t is None or t in targets or t.lstrip("#") in targets]
        return max(found, default=0.0)

    # -- one request

    def _serve(self, h: _Handler) -> None:
        now = self.clock()
        try:
            raw = _read_body(h)
        except (ValueError, OSError):
            h.close_connection = True
            return
        split = urlsplit(h.path)
        path = split.path
        headers = {}
        for k, v in h.headers.items():
            if k.lower() == "authorization":
                scheme = v.split(" ", 1)[0] if " " in v else ""
                v = f"{scheme} <redacted>".strip()
            headers[k] = v
        rec = SlackRequest(method=h.command, path=path, kind="other", headers=headers, body=None, raw=raw, time=now)
        reply_headers: dict[str, str] = {}
        if path.startswith("/services/"):
            status, ctype, body = self._webhook(rec, h, raw, now)
        elif path.startswith("/api/"):
            status, ctype, body = self._api(rec, h, raw, split.query, now)
        else:
            status, ctype, body = 404, "text/plain; charset=utf-8", b"not found"
        if rec.retry_after is not None:
            reply_headers["Retry-After"] = str(rec.retry_after)
        rec.status, rec.response = status, body
        rec.delay = self._delay_for(rec.targets)
        with self._changed:
            self._requests.append(rec)
            self._changed.notify_all()

        if rec.delay and self._stopping.wait(rec.delay):
            h.close_connection = True  # stopped while holding the answer: drop the connection
            return
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            h.send_header("X-Slack-Req-Id", uuid.uuid4().hex)
            for k, v in reply_headers.items():
                h.send_header(k, v)
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(body)
            h.wfile.flush()
        except OSError:  # the client went away (e.g. it timed out during a delay)
            h.close_connection = True

    def _webhook(self, rec: SlackRequest, h: _Handler, raw: bytes, now: float) -> tuple[int, str, bytes]:
        rec.kind = "webhook"
        parts = rec.path.split("/")
        name = parts[4] if len(parts) == 5 and all(parts[2:5]) else None
        rec.webhook = rec.channel = name
        rec.targets = frozenset(t for t in (name, rec.path, "webhook") if t)
        rec.body = _parse_webhook_payload(h.headers.get("Content-Type", ""), raw)

        def fail(error: str, status: Optional[int] = None) -> tuple[int, str, bytes]:
            rec.error = error
            return status or WEBHOOK_ERROR_STATUS.get(error, 400), "text/html", error.encode()

        failure = self._take_failure(rec.targets, now)
        if failure is not None:
            rec.injected = True
            return self._webhook_failure(rec, failure)
        if rec.method != "POST":
            return fail("invalid_payload")
        if name is None or (self.webhooks is not None and name not in self.webhooks):
            return fail("no_service")
        payload = rec.body
        if not isinstance(payload, dict):
            return fail("invalid_payload")
        if not (payload.get("text") or payload.get("blocks") or payload.get("attachments")):
            return fail("no_text")
        if not isinstance(payload.get("blocks", []), list) or len(payload.get("blocks") or []) > MAX_BLOCKS:
            return fail("invalid_blocks")
        if len(payload.get("attachments") or []) > MAX_ATTACHMENTS:
            return fail("too_many_attachments")
        retry_after = self._rate_limit("webhook:" + name, now)
        if retry_after is not None:
            rec.retry_after, rec.rate_limited = retry_after, True
            return fail("rate_limited", 429)
        rec.delivered = True
        return 200, "text/html", b"ok"

    def _webhook_failure(self, rec: SlackRequest, f: _Failure) -> tuple[int, str, bytes]:
        status = f.status
        error = f.error
        if status is None:
            status = WEBHOOK_ERROR_STATUS.get(error, 400) if error else 500
        if error is None:
            error = WEBHOOK_STATUS_ERROR.get(status)
        rec.error = error
        if status == 429:
            rec.retry_after = f.retry_after if f.retry_after is not None else 1
        if f.body is not None:
            body = f.body.encode() if isinstance(f.body, str) else f.body
            return status, "text/html", body
        if status >= 500 and error is None:
            return status, "text/html; charset=utf-8", _html(status)
        return status, "text/html", (error or "").encode()

    def _api(self, rec: SlackRequest, h: _Handler, raw: bytes, query: str, now: float) -> tuple[int, str, bytes]:
        rec.kind = "api"
        method = rec.path[len("/api/"):]
        rec.api_method = method
        ctype = h.headers.get("Content-Type", "").split(";")[0].strip().lower()
        params: dict[str, Any] = _flatten(parse_qs(query, keep_blank_values=True))
        bad_json = False
        form_token = params.get("token")
        if raw:
            if ctype == "application/json":
                try:
                    data = json.loads(raw.decode("utf-8"))
                    if isinstance(data, dict):
                        params.update(data)
                    else:
                        bad_json = True
                except (UnicodeDecodeError, json.JSONDecodeError):
                    bad_json = True
            else:  # x-www-form-urlencoded (what slack_sdk sends for form calls), or anything else
                form = _flatten(parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True))
                form_token = form.get("token", form_token)
                for key in ("blocks", "attachments", "metadata"):
                    if isinstance(form.get(key), str):
                        try:
                            form[key] = json.loads(form[key])
                        except json.JSONDecodeError:
                            pass
                params.update(form)
        params.pop("token", None)
        rec.body = params

        channel_arg = params.get("channel")
        ch = self._find_channel(channel_arg) if isinstance(channel_arg, str) and channel_arg else None
        if ch is not None:
            rec.channel = ch.id
        rec.targets = frozenset(
            t for t in (method, rec.path, channel_arg if isinstance(channel_arg, str) else None,
                        ch.id if ch else None, ch.name if ch else None) if t
        )

        auth = h.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else form_token
        rec.authorized = token in self.tokens if token else False

        def answer(data: dict, status: int = 200) -> tuple[int, str, bytes]:
            if not data.get("ok"):
                rec.error = data.get("error")
            return status, JSON_TYPE, json.dumps(data).encode()

        def error(err: str) -> tuple[int, str, bytes]:
            return answer({"ok": False, "error": err})

        failure = self._take_failure(rec.targets, now)
        if failure is not None:
            rec.injected = True
            return self._api_failure(rec, failure)
        if bad_json:
            return error("invalid_json")
        if not token:
            return error("not_authed")
        if not rec.authorized:
            return error("invalid_auth")

        if method == "api.test":
            return answer({"ok": True, "args": params})
        if method == "auth.test":
            return answer({
                "ok": True, "url": "https://fake-team.slack.com/", "team": TEAM_NAME, "user": "alerts-bot",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": BOT_ID, "is_enterprise_install": False,
            })
        if method == "conversations.open":
            users = params.get("users")
            if not users and channel_arg:
                if ch is None:
                    return error("channel_not_found")
                return answer({"ok": True, "no_op": True, "already_open": True, "channel": {"id": ch.id}})
            if not users:
                return error("users_list_not_supplied")
            ids = [u.strip() for u in str(users).split(",") if u.strip()]
            if len(ids) != 1:
                return error("not_implemented")  # group DMs: not needed by alerts
            if ids[0] not in self._users:
                return error("user_not_found")
            dm = self._find_channel(self.dm_channel(ids[0]))
            return answer({"ok": True, "no_op": False, "already_open": False,
                           "channel": {"id": dm.id, "is_im": True, "user": ids[0]}})
        if method == "chat.postMessage":
            if ch is None:
                return error("channel_not_found")
            if ch.archived:
                return error("is_archived")
            if not ch.member:
                return error("not_in_channel")
            text = params.get("text")
            blocks = params.get("blocks")
            attachments = params.get("attachments")
            if not (text or blocks or attachments):
                return error("no_text")
            if isinstance(text, str) and len(text) > MAX_TEXT_CHARS:
                return error("msg_too_long")
            if blocks is not None and (not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS):
                return error("invalid_blocks")
            if attachments is not None and (not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS):
                return error("too_many_attachments")
            retry_after = self._rate_limit("channel:" + ch.id, now)
            if retry_after is not None:
                rec.retry_after, rec.rate_limited = retry_after, True
                return answer({"ok": False, "error": "ratelimited"}, 429)
            ts = self._next_ts()
            message = {"type": "message", "subtype": "bot_message", "text": text or "", "user": BOT_USER_ID,
                       "bot_id": BOT_ID, "team": TEAM_ID, "ts": ts}
            if blocks:
                message["blocks"] = blocks
            if attachments:
                message["attachments"] = attachments
            if params.get("thread_ts"):
                message["thread_ts"] = params["thread_ts"]
            rec.delivered = True
            return answer({"ok": True, "channel": ch.id, "ts": ts, "message": message})
        return error("unknown_method")

    def _api_failure(self, rec: SlackRequest, f: _Failure) -> tuple[int, str, bytes]:
        status = f.status if f.status is not None else (200 if f.error else 500)
        if status == 429:
            rec.retry_after = f.retry_after if f.retry_after is not None else 1
        error = f.error or ("ratelimited" if status == 429 else None)
        if f.body is not None:
            rec.error = error
            body = f.body.encode() if isinstance(f.body, str) else f.body
            ctype = JSON_TYPE if body[:1] == b"{" else "text/html; charset=utf-8"
            return status, ctype, body
        if status >= 500 and f.error is None:
            return status, "text/html; charset=utf-8", _html(status)
        rec.error = error or "internal_error"
        return status, JSON_TYPE, json.dumps({"ok": False, "error": rec.error}).encode()


def _html(status: int) -> bytes:
    return HTML_ERROR.format(status=status, reason=REASONS.get(status, "Error")).encode()


def _flatten(qs: dict[str, list[str]]) -> dict[str, Any]:
    return {k: (v[0] if len(v) == 1 else v) for k, v in qs.items()}


def _parse_webhook_payload(content_type: str, raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        text = parse_qs(text).get("payload", [None])[0]
        if text is None:
            return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size_line = h.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(h.rfile.read(size))
            h.rfile.readline(3)
    length = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(length) if length > 0 else b""
