"""``alerts.login(key=, host=)`` and ``alerts login``: check a key with the server, then store it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from alerts import logredact
from alerts.errors import AuthenticationError, Error, UsageError
from alerts.sdk import credentials
from alerts.sdk.ingest import AUTH, IngestClient, IngestError

# Seconds to wait for the server to answer GET /me.
CHECK_TIMEOUT = 10.0


def server_url(host: Optional[str]) -> str:
    """``host``, else ``ALERTS_URL``, else the server stored last; an error if none."""
    url = host or os.environ.get("ALERTS_URL") or credentials.load().get("default")
    if not url:
        raise UsageError("which server? pass host= (alerts login --host URL) or set ALERTS_URL")
    return credentials.normalize_url(url)


def check_key(url: str, key: str) -> str:
    """The user ``key`` belongs to on ``url`` (``GET /api/v1/me``); raises if refused or unreachable."""
    logredact.install()
    logredact.register(key)
    client = IngestClient(url, key)
    try:
        me = client.me(timeout=CHECK_TIMEOUT)
    except IngestError as exc:
        if exc.verdict == AUTH:
            raise AuthenticationError(f"{url} refused this API key ({exc.status})") from None
        raise Error(f"could not check the key with {url}: {exc}") from None
    finally:
        client.close()
    if not isinstance(me, dict) or not isinstance(me.get("name"), str):
        raise Error(f"{url} does not look like an alerts server (GET /api/v1/me answered {me!r:.100})")
    return me["name"]


def login(key: str, host: Optional[str]) -> tuple[str, str, Path]:
    """Check ``key`` with the server and store it: ``(url, user, credentials file)``."""
    key = key.strip()
    if not key:
        raise UsageError("the API key is empty")
    url = server_url(host)
    user = check_key(url, key)
    return url, user, credentials.save(url, key, user)
