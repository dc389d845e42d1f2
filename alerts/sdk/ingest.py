"""The SDK's HTTP client of the server's runs API (``/api/v1/me``, ``/runs``, ``/batches``, ``/heartbeat``,
``/finish``): what the remote mode speaks. The SDK never imports ``alerts.server``; this is the only
module that knows the server's routes.

Every failure becomes one :class:`IngestError`, whose ``verdict`` says what the caller should do::

    IngestError
      verdict "retry"   the network failed, the server timed out, answered 5xx, 408 or 429: try the
                        same request again later (it may or may not have been stored: the batch's
                        seq makes a second copy harmless). ``retry_after`` is the server's hint.
      verdict "auth"    401/403: the key is wrong or revoked. Keep the data; try again much later.
      verdict "reject"  any other 4xx: the request itself is wrong, and sending it again cannot help.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from typing import Any, Optional

import httpx

from alerts.logredact import redact

logger = logging.getLogger("alerts")

API_PREFIX = "/api/v1"
# Seconds: a request that has not connected, or has not been answered, within these is retried later.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 15.0
# How much of a refusal's body a message quotes.
MAX_DETAIL_CHARS = 500

RETRY, AUTH, REJECT = "retry", "auth", "reject"
# A refusal's reason, for a program (the server's ``X-Alerts-Reason``): another live process writes the run.
REASON_HEADER = "X-Alerts-Reason"
RUN_IN_USE = "run-in-use"


def verdict_for(status: int) -> Optional[str]:
    """What an HTTP status means for the sender: None (done), RETRY, AUTH or REJECT."""
    if 200 <= status < 300:
        return None
    if status in (401, 403):
        return AUTH
    if status in (408, 425, 429) or status >= 500:
        return RETRY
    return REJECT


class IngestError(Exception):
    """A request to the server that did not succeed (see the module docstring for ``verdict``)."""

    def __init__(self, message: str, verdict: str, status: Optional[int] = None,
                 retry_after: Optional[float] = None, reason: Optional[str] = None,
                 detail: Optional[str] = None) -> None:
        super().__init__(message)
        self.verdict = verdict
        self.status = status
        self.retry_after = retry_after
        self.reason = reason  # the server's X-Alerts-Reason (RUN_IN_USE), if it gave one
        self.detail = detail  # what the server said, redacted


def key_id(api_key: str) -> str:
    """A short fingerprint of a key, safe to write to disk (it tells spools of different keys apart)."""
    import hashlib

    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class IngestClient:
    """One server and one API key. Methods return the decoded JSON answer or raise :class:`IngestError`.

    Not shared between threads: the background sender has its own, ``init()`` another.
    """

    def __init__(self, url: str, api_key: str, *, connect_timeout: Optional[float] = None,
                 read_timeout: Optional[float] = None) -> None:
        self.url = url.rstrip("/")
        connect_timeout = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        read_timeout = READ_TIMEOUT if read_timeout is None else read_timeout
        from alerts import __version__
        self._http = httpx.Client(
            base_url=self.url + API_PREFIX,
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": f"run-alerts/{__version__}",
                     "Content-Type": "application/json"},
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            trust_env=False,  # a proxy variable meant for the internet must not capture a private server
        )

    def close(self) -> None:
        self._http.close()

    # -- the API -----------------------------------------------------------------------------------

    def me(self, timeout: Optional[float] = None) -> dict:
        """``GET /me``: the key's user (``{"name", "is_admin"}``)."""
        return self._call("GET", "/me", None, timeout)

    def create_run(self, body: bytes, timeout: Optional[float] = None) -> dict:
        """``POST /runs``: create (201) or resume (200) a run; the RunOut."""
        return self._call("POST", "/runs", body, timeout)

    def send_batch(self, run_id: str, body: bytes) -> dict:
        """``POST /runs/{id}/batches``: ``{seq, stored, last_seq}``."""
        return self._call("POST", f"/runs/{run_id}/batches", body, None)

    def heartbeat(self, run_id: str) -> None:
        self._call("POST", f"/runs/{run_id}/heartbeat", b"{}", None)

    def finish(self, run_id: str, body: bytes) -> dict:
        """``POST /runs/{id}/finish``: the RunOut (idempotent on the server)."""
        return self._call("POST", f"/runs/{run_id}/finish", body, None)

    # -- one place where library errors become IngestError ----------------------------------------

    def _call(self, method: str, path: str, body: Optional[bytes], timeout: Optional[float]) -> Any:
        kwargs: dict = {"content": body} if body is not None else {}
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(min(timeout, READ_TIMEOUT), connect=min(timeout, CONNECT_TIMEOUT))
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise IngestError(f"{self.url} did not answer in time ({type(exc).__name__})", RETRY) from None
        except (httpx.TransportError, OSError) as exc:
            raise IngestError(f"could not reach {self.url} ({type(exc).__name__}: {redact(str(exc))})", RETRY) from None
        verdict = verdict_for(response.status_code)
        if verdict is not None:
            detail = _detail(response)
            raise IngestError(f"{self.url} answered {response.status_code} to {method} {path}: {detail}", verdict,
                              response.status_code, _retry_after(response), response.headers.get(REASON_HEADER),
                              detail)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise IngestError(f"{self.url} answered {method} {path} with something that is not JSON", RETRY,
                              response.status_code) from None


def _detail(response: httpx.Response) -> str:
    try:
        detail: Any = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return redact(text[:MAX_DETAIL_CHARS])


def _retry_after(response: httpx.Response) -> Optional[float]:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def host_and_pid() -> dict:
    """What the server is told about where a run runs."""
    return {"host": socket.gethostname(), "pid": os.getpid()}
