"""Email through aiosmtplib: one multipart (plain text and HTML) message per notification group.

STARTTLS or implicit TLS and AUTH come from the settings (``ALERTS_SMTP_*``). Header values are
built from user text with every CR and LF removed, so a title cannot add a header (``Bcc:``).
SMTP's own answers decide retries: 4xx (mailbox busy, greylisting) and a server that cannot be reached
retry; 5xx (no such user, authentication refused) do not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.thread  # now, not lazily at exit, when Python refuses the import's atexit hook
import html
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Optional

import aiosmtplib

from alerts.channels.base import DeliveryError, Notification, format_value
from alerts.settings import Settings

SHOWN_IN_GROUP = 20


def header_safe(text: str, limit: int = 200) -> str:
    """Text fit for a header: no CR/LF (or other line breaks), whitespace collapsed, clipped."""
    flat = " ".join(str(text).replace("\r", " ").replace("\n", " ").split())
    for breaker in ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"):
        flat = flat.replace(breaker, " ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def subject_of(group: list[Notification]) -> str:
    first = group[0]
    resolved = "RESOLVED " if first.status == "resolved" else ""
    more = f" (+{len(group) - 1} more)" if len(group) > 1 else ""
    return header_safe(f"[{first.level}] {resolved}{first.title}{more}")


def build_email(group: list[Notification], sender: str, to: list[str]) -> EmailMessage:
    """The message for ``group``: subject ``[LEVEL] title``, plain text and HTML bodies."""
    message = EmailMessage()
    message["Subject"] = subject_of(group)
    message["From"] = header_safe(sender)
    message["To"] = ", ".join(header_safe(a) for a in to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="alerts.local")
    plain, rich = [], []
    for n in group[:SHOWN_IN_GROUP]:
        status = "RESOLVED " if n.status == "resolved" else ""
        details = [f"run {n.run_name} ({n.run_id}) in {n.project}"]
        if n.metric is not None:
            details.append(f"{n.metric} = {format_value(n.value)}")
        if n.step is not None:
            details.append(f"step {n.step}")
        plain.append(f"[{n.level}] {status}{n.title}\n{n.text}\n{'; '.join(details)}\n")
        rich.append(f"<h3>[{html.escape(n.level)}] {status}{html.escape(n.title)}</h3>"
                    f"<p>{html.escape(n.text)}</p><p><small>{html.escape('; '.join(details))}</small></p>")
    if len(group) > SHOWN_IN_GROUP:
        plain.append(f"+{len(group) - SHOWN_IN_GROUP} more")
        rich.append(f"<p>+{len(group) - SHOWN_IN_GROUP} more</p>")
    message.set_content("\n".join(plain))
    message.add_alternative("<html><body>" + "".join(rich) + "</body></html>", subtype="html")
    return message


class _InlineExecutor(concurrent.futures.thread.ThreadPoolExecutor):
    """Runs what asyncio hands its executor (getaddrinfo) in the calling thread: no pool thread."""

    def submit(self, fn, /, *args, **kwargs):
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed back to asyncio through the future
            future.set_exception(exc)
        return future


class EmailSender:
    """Sends one email per group to ``to`` through the SMTP server of the settings."""

    def __init__(self, settings: Settings, to: list[str], timeout: float = 15.0) -> None:
        if not settings.smtp_host:
            raise DeliveryError("ALERTS_SMTP_HOST is not set", recoverable=False)
        self._settings = settings
        self._to = to
        self._timeout = timeout

    def _tls_context(self) -> Optional[ssl.SSLContext]:
        if not (self._settings.smtp_starttls or self._settings.smtp_ssl):
            return None
        return ssl.create_default_context(cafile=self._settings.smtp_ca_file or None)

    def send_group(self, notifications: list[Notification]) -> Optional[str]:
        message = build_email(notifications, self._settings.smtp_from, self._to)
        loop = asyncio.new_event_loop()
        # Name lookups inline, not on asyncio's default thread pool: at interpreter exit (the relay's
        # last chance to send) Python refuses new pool threads, and every send would fail.
        loop.set_default_executor(_InlineExecutor())
        try:
            loop.run_until_complete(self._send(message))
        except DeliveryError:
            raise
        except Exception as exc:
            raise translate_smtp_error(exc) from None
        finally:
            loop.close()
        return str(message["Message-ID"])

    async def _send(self, message: EmailMessage) -> None:
        s = self._settings
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        await aiosmtplib.send(
            message, hostname=s.smtp_host, port=s.smtp_port, username=s.smtp_username, password=password,
            use_tls=s.smtp_ssl, start_tls=bool(s.smtp_starttls) and not s.smtp_ssl,
            tls_context=self._tls_context(), timeout=self._timeout,
        )


def translate_smtp_error(exc: BaseException) -> DeliveryError:
    """aiosmtplib's errors as a :class:`DeliveryError`: 4xx and unreachable retry, 5xx do not."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [getattr(e, "code", 550) for e in exc.recipients]
        temporary = all(400 <= code < 500 for code in codes)
        detail = ", ".join(f"{getattr(e, 'recipient', '?')}: {getattr(e, 'code', '?')}" for e in exc.recipients)
        return DeliveryError(f"recipients refused ({detail})", recoverable=temporary)
    if isinstance(exc, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected,
                        aiosmtplib.SMTPTimeoutError, asyncio.TimeoutError, ConnectionError, OSError)):
        return DeliveryError(f"SMTP server not reached: {type(exc).__name__}", recoverable=True)
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return DeliveryError(f"SMTP answered {code} {getattr(exc, 'message', '')}".strip(),
                             recoverable=400 <= code < 500)
    return DeliveryError(f"SMTP failed: {type(exc).__name__}: {exc}", recoverable=True)
