"""Secrets out of logs and error texts: webhook URLs, the bot token, the SMTP and database passwords.

Two nets, because a secret can reach a log without us having seen it first:

* the secrets this process knows (from the settings and the channel files) are registered with
  :func:`register` and replaced wherever they appear;
* shapes that are secret whoever configured them are masked by pattern: a Slack webhook path
  (``/services/T…/B…/…``), a Slack token (``xoxb-…``), the password in a URL (``://user:pw@``).

:class:`RedactingFilter` applies both to every record of the loggers that could print a secret: ours
(``alerts``) and the libraries' that log request URLs at DEBUG (slack_sdk's clients). A filter on a
logger only sees records created on that very logger (not its children's), so it is installed on
each of them by name, and the Slack clients are handed exactly those loggers.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Iterable, Optional

MASK = "<redacted>"

#: Loggers whose records may carry a secret. slack_sdk logs every request URL (a webhook URL is the
#: secret itself) at DEBUG, on these per-module loggers, which our Slack clients are also given.
#: aiosmtplib logs nothing, and slack_sdk sends through urllib (no urllib3 or httpx logger).
SLACK_WEBHOOK_LOGGER = "slack_sdk.webhook.client"
SLACK_WEB_LOGGER = "slack_sdk.web.base_client"
# uvicorn's: its error logger prints the traceback of a request that failed (SQL parameters, URLs).
GUARDED_LOGGERS = ("alerts", "alerts.server", SLACK_WEBHOOK_LOGGER, SLACK_WEB_LOGGER, "uvicorn.error",
                   "uvicorn.access")

_PATTERNS = (
    # A Slack incoming webhook: /services/<team>/<bot>/<secret>, on any host (a relay, a test server).
    (re.compile(r"/services/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/[A-Za-z0-9_-]+"), "/services/" + MASK),
    # Slack tokens: bot, user, app, refresh, configuration.
    (re.compile(r"\bxox[abeoprs]-[A-Za-z0-9-]+"), "xox-" + MASK),
    # user:password@ in any URL (a database URL, a proxy).
    (re.compile(r"(://[^:/@\s]*):[^@/\s]+@"), r"\1:" + MASK + "@"),
)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first, so a secret containing another is masked whole
_installed = False

# Shorter than this is not treated as a secret: masking "a" everywhere would mangle every message.
MIN_SECRET_LENGTH = 4


def register(*secrets: Optional[str]) -> None:
    """Remember secrets to mask from now on (``None`` and very short strings are ignored)."""
    global _secrets
    fresh = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
    if not fresh or fresh.issubset(_secrets):
        return
    with _lock:
        _secrets = tuple(sorted(set(_secrets) | fresh, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret and every secret-shaped part replaced by ``<redacted>``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback text) with secrets masked; never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string is the handler's to report, as without us
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatted now, as a handler would, so the traceback is masked too (URLs in exceptions).
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install(names: Iterable[str] = GUARDED_LOGGERS) -> None:
    """Put the redacting filter on the loggers that may carry secrets (once; cheap to call again)."""
    global _installed
    if _installed:
        return
    with _lock:
        for name in names:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        _installed = True


def guarded_logger(name: str) -> logging.Logger:
    """The logger ``name`` with the redacting filter on it, to hand to a library client."""
    install()
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
