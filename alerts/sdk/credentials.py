"""Which server a script logs to, and with which API key: ``ALERTS_URL`` and ``ALERTS_API_KEY``, else
what ``alerts login`` stored.

The file is ``$XDG_CONFIG_HOME/alerts/credentials`` (default ``~/.config/alerts/credentials``), JSON,
readable by its owner only (mode 0600, in a 0700 folder), written whole (a temporary file renamed)::

    {"default": "https://alerts.example.com",
     "hosts": {"https://alerts.example.com": {"key": "ak_...", "user": "alice"}}}

The environment wins over the file: ``ALERTS_URL`` picks the server (the file's key for it is used
unless ``ALERTS_API_KEY`` is set). A key read from the file is registered with the log redaction, as
``ALERTS_API_KEY`` is, so no log line prints it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple, Optional
from urllib.parse import urlsplit

from alerts import logredact
from alerts.errors import UsageError


class Remote(NamedTuple):
    """A server to log to: its base URL and the API key to present."""

    url: str
    api_key: str

    def __repr__(self) -> str:  # never the key, wherever this ends up printed
        return f"Remote(url={self.url!r}, api_key=<redacted>)"


def path() -> Path:
    """The credentials file."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "alerts" / "credentials"


def normalize_url(url: str) -> str:
    """``url`` without a trailing slash; an error unless it is http(s)://host[:port][/path]."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"the server's URL must look like https://host[:port], not {url!r}")
    return url


def load() -> dict:
    """The stored credentials (empty when there are none or the file cannot be read)."""
    try:
        data = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(url: str, api_key: str, user: Optional[str]) -> Path:
    """Store ``api_key`` for ``url`` and make ``url`` the default server; returns the file's path."""
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = load()
    hosts: Any = data.get("hosts") if isinstance(data.get("hosts"), dict) else {}
    hosts[url] = {"key": api_key, "user": user}
    data.update(default=url, hosts=hosts)
    tmp = target.with_name(f".credentials-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an old temporary file keeps its mode through O_CREAT
        os.write(fd, json.dumps(data, indent=2).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)
    return target


def stored_user(url: str) -> Optional[str]:
    """The user name ``alerts login`` learnt for ``url``, if any."""
    entry = load().get("hosts", {}).get(url)
    return entry.get("user") if isinstance(entry, dict) else None


def resolve(settings_url: Optional[str], settings_key: Optional[str]) -> Optional[Remote]:
    """The server this process logs to, or None (embedded). ``settings_url``/``settings_key`` are
    ``ALERTS_URL``/``ALERTS_API_KEY``; a URL without any key is an error that says how to get one."""
    data = load()
    url = settings_url or data.get("default")
    if not url:
        return None
    url = normalize_url(url)
    key = settings_key
    if not key:
        entry = data.get("hosts", {}).get(url) if isinstance(data.get("hosts"), dict) else None
        key = entry.get("key") if isinstance(entry, dict) else None
        if key:
            logredact.install()
            logredact.register(key)
    if not key:
        raise UsageError(f"alerts: logging to {url} needs an API key: set ALERTS_API_KEY, or run "
                         f"`alerts login --host {url}` (an admin makes keys with `alerts users add NAME`)")
    return Remote(url, key)
