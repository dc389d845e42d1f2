"""Slack's webhook client over one kept-open connection, instead of a new one for every message.

slack_sdk's :class:`WebhookClient` sends through ``urllib``, which opens a new connection (for https,
a new TLS handshake: one or two round trips to Slack plus its CPU) for every message and closes it
after. :class:`KeepAliveWebhookClient` keeps everything of slack_sdk's client (the body it builds,
its DEBUG lines through the redacting logger, its response object) but sends on one
``http.client`` connection per webhook, kept open between messages (HTTP/1.1 keep-alive) and opened
ahead of the first message by :meth:`connect` (at ``init()``).

A kept connection that the server closed while it sat idle fails at its next use before any answer
came (reset, broken pipe, or closed before the status line): that request is sent once more on a
new connection. A request that got any answer is never sent again. With a proxy configured
(``proxy=`` or slack_sdk's ``HTTPS_PROXY``/``HTTP_PROXY``) slack_sdk's own urllib path is used.
"""

from __future__ import annotations

import http.client
import ssl
import threading
import urllib.parse
from typing import Optional

from slack_sdk.webhook import WebhookClient
from slack_sdk.webhook.internal_utils import _debug_log_response
from slack_sdk.webhook.webhook_response import WebhookResponse

# A kept connection's use that fails like this, before any answer, is a connection the server
# closed while it was idle: the request did not reach it, and goes once more on a new connection.
STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)

# Skipped headers: http.client writes Host and Content-Length itself, and urllib's
# "Connection: close" is what this client is here to avoid.
_OWN_HEADERS = {"host", "content-length", "connection"}


class KeepAliveWebhookClient(WebhookClient):
    """A :class:`WebhookClient` that keeps its connection to the webhook open between messages."""

    def __init__(self, url: str, *args, **kwargs) -> None:
        super().__init__(url, *args, **kwargs)
        parts = urllib.parse.urlsplit(url)
        self._https = parts.scheme.lower() == "https"
        self._host, self._port = parts.hostname or "", parts.port
        self._target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._conn: Optional[http.client.HTTPConnection] = None
        self._lock = threading.Lock()  # one request at a time on the connection

    def _new_connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            context = self.ssl if isinstance(self.ssl, ssl.SSLContext) else ssl.create_default_context()
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=context)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def connect(self, timeout: float = 1.0) -> bool:
        """Open the connection now (TCP, and TLS for https), ahead of the first message; False if it
        could not be opened in ``timeout`` seconds (the first message then opens one itself)."""
        if self.proxy is not None:
            return False
        with self._lock:
            if self._conn is not None and self._conn.sock is not None:
                return True
            conn = self._new_connection(timeout)
            try:
                conn.connect()
            except OSError:
                conn.close()
                return False
            conn.sock.settimeout(self.timeout)  # from now on, each use waits as long as a send may
            conn.timeout = self.timeout
            self._close()
            self._conn = conn
            return True

    def close(self) -> None:
        """Close the kept connection (a later message opens a new one)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _perform_http_request_internal(self, url: str, req) -> WebhookResponse:
        if self.proxy is not None:
            return super()._perform_http_request_internal(url, req)
        headers = {k: v for k, v in req.header_items() if k.lower() not in _OWN_HEADERS}
        with self._lock:
            for attempt in (1, 2):
                reused = self._conn is not None and self._conn.sock is not None
                if self._conn is None:
                    self._conn = self._new_connection(self.timeout)
                try:
                    self._conn.request("POST", self._target, body=req.data, headers=headers)
                    answer = self._conn.getresponse()
                    body = answer.read()
                except STALE:
                    self._close()
                    if reused and attempt == 1:
                        continue  # the server had closed the idle connection: the request never got there
                    raise
                except BaseException:
                    self._close()  # in an unknown state (a timeout mid-answer): never reused
                    raise
                if answer.will_close:
                    self._close()
                break
        charset = answer.headers.get_content_charset() or "utf-8"
        resp = WebhookResponse(url=url, status_code=answer.status, body=body.decode(charset, "replace"),
                               headers=dict(answer.headers.items()))
        _debug_log_response(self.logger, resp)
        return resp
