"""Email through aiosmtplib: one multipart (plain text and HTML) message per notification group.

TLS and AUTH come from the settings (``ALERTS_SMTP_*``): implicit TLS with ``SSL``; otherwise the
connection is upgraded with STARTTLS whenever the server offers it (``STARTTLS=true`` requires it,
``false`` never tries). The username and password cross only an encrypted connection: over a plain
one the send is refused (a permanent error saying why) unless ``ALLOW_PLAINTEXT_AUTH=true``, loopback
included (a local relay that wants a password can offer STARTTLS, or be allowed explicitly). The
server's certificate is verified whenever a password crosses it or TLS was asked for.
Header values are built from user text with every CR and LF removed, so a title cannot add a header
(``Bcc:``).
SMTP's own answers decide retries: 4xx (mailbox busy, greylisting) and a server that cannot be reached
retry; 5xx (no such user, authentication refused) do not. A channel with several addresses has one
outbox row (and one email) per address, so each address's answer decides its own row.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.thread  # now, not lazily at exit, when Python refuses the import's atexit hook
import html
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Optional, Sequence

import aiosmtplib

from alerts.channels.base import DeliveryError, Notification, format_value
from alerts.pipeline.incident import Incident, summarize
from alerts.settings import Settings

SHOWN_IN_GROUP = 20


def header_safe(text: str, limit: int = 200) -> str:
    """Text fit for a header: no CR/LF (or other line breaks), whitespace collapsed, clipped."""
    flat = " ".join(str(text).replace("\r", " ").replace("\n", " ").split())
    for breaker in ("\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"):
        flat = flat.replace(breaker, " ")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def subject_of(group: list[Notification], incident: Optional[Incident] = None) -> str:
    """``[LEVEL] title (+N more)``, or ``[LEVEL] 12 runs of sweep-1 failed`` for an incident of several runs."""
    first = group[0]
    if incident is not None and incident.many_runs:
        return header_safe(f"[{first.level}] {incident.headline}")
    resolved = "RESOLVED " if first.status == "resolved" else ""
    more = f" (+{len(group) - 1} more)" if len(group) > 1 else ""
    return header_safe(f"[{first.level}] {resolved}{first.title}{more}")


def build_email(group: list[Notification], sender: str, to: list[str],
                earlier: Sequence[Notification] = ()) -> EmailMessage:
    """The message for ``group``: subject ``[LEVEL] title``, plain text and HTML bodies. ``earlier``:
    the alerts of the same incident that the group's previous messages carried; an incident of
    several runs is named in the subject and its runs listed first."""
    incident = summarize(group, earlier)
    message = EmailMessage()
    message["Subject"] = subject_of(group, incident)
    message["From"] = header_safe(sender)
    message["To"] = ", ".join(header_safe(a) for a in to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="alerts.local")
    plain, rich = [], []
    if incident.many_runs:
        plain.append(f"{incident.line()}\n")
        rich.append(f"<p><b>{html.escape(incident.headline)}</b>: {html.escape(incident.run_list())}</p>")
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

    def _tls_context(self) -> ssl.SSLContext:
        """Verifying (against ALERTS_SMTP_CA_FILE when set) whenever it matters: a password will cross
        it, or TLS was asked for. Otherwise the upgrade is opportunistic, as between mail servers: a
        relay with a self-signed certificate still gets an encrypted connection, not a refusal."""
        s = self._settings
        context = ssl.create_default_context(cafile=s.smtp_ca_file or None)
        if not (s.smtp_username or s.smtp_ssl or s.smtp_starttls):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def send_group(self, notifications: list[Notification], earlier: Sequence[Notification] = ()) -> Optional[str]:
        message = build_email(notifications, self._settings.smtp_from, self._to, earlier)
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
        refusal = plaintext_auth_refusal(s)
        if refusal and s.smtp_starttls is False:
            raise DeliveryError(refusal, recoverable=False)  # known before connecting
        # STARTTLS is done here rather than by aiosmtplib, so that we know whether it happened.
        client = aiosmtplib.SMTP(hostname=s.smtp_host, port=s.smtp_port, use_tls=s.smtp_ssl, start_tls=False,
                                 tls_context=self._tls_context(), timeout=self._timeout)
        async with client:
            await _greet(client)
            if not s.smtp_ssl and s.smtp_starttls is not False:
                if client.supports_extension("starttls"):
                    await client.starttls()
                elif s.smtp_starttls:
                    raise DeliveryError(f"{s.smtp_host}:{s.smtp_port} does not offer STARTTLS, which "
                                        "ALERTS_SMTP_STARTTLS=true requires", recoverable=False)
            encrypted = client.get_transport_info("sslcontext") is not None
            if refusal and not encrypted:
                raise DeliveryError(refusal, recoverable=False)  # before AUTH: the password never leaves
            if s.smtp_username:
                password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                await client.login(s.smtp_username, password)
            errors, _ = await client.send_message(message)
            if errors:
                raise partial_refusal(errors, self._to)


def partial_refusal(refused: dict, to: list[str]) -> DeliveryError:
    """Some addresses of one email accepted it, others were refused. The email went out, so it is not
    retried (that would send the accepted ones the alert twice): a permanent error naming who got it
    and why the others did not. (Channels with several addresses have one row per address, so this
    only happens to a row queued for a whole channel.)"""
    accepted = [a for a in to if a not in refused]
    detail = ", ".join(f"{address}: {getattr(e, 'code', '?')} {getattr(e, 'message', '')}".strip()
                       for address, e in refused.items())
    return DeliveryError(f"sent to {', '.join(accepted)}; refused ({detail}), not retried so that the "
                         "others do not get it twice", recoverable=False)


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO, or HELO for a server that knows no ESMTP (it offers neither STARTTLS nor AUTH then)."""
    try:
        await client.ehlo()
    except aiosmtplib.SMTPHeloError:
        await client.helo()


def plaintext_auth_refusal(settings: Settings) -> Optional[str]:
    """Why the username and password may not cross a plain connection under ``settings``, or None
    when they may (no username, implicit TLS, or ALERTS_SMTP_ALLOW_PLAINTEXT_AUTH=true)."""
    if not settings.smtp_username or settings.smtp_ssl or settings.smtp_allow_plaintext_auth:
        return None
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    why = ("ALERTS_SMTP_STARTTLS=false" if settings.smtp_starttls is False
           else f"{where} does not offer STARTTLS")
    return (f"refused to send the SMTP username and password unencrypted ({why}): use a server with "
            "STARTTLS or ALERTS_SMTP_SSL=true, or set ALERTS_SMTP_ALLOW_PLAINTEXT_AUTH=true to allow it")


def translate_smtp_error(exc: BaseException) -> DeliveryError:
    """aiosmtplib's errors as a :class:`DeliveryError`: 4xx and unreachable retry, 5xx do not."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [getattr(e, "code", 550) for e in exc.recipients]
        temporary = all(400 <= code < 500 for code in codes)
        detail = ", ".join(f"{getattr(e, 'recipient', '?')}: {getattr(e, 'code', '?')}" for e in exc.recipients)
        return DeliveryError(f"recipients refused ({detail})", recoverable=temporary)
    if isinstance(exc, ssl.SSLCertVerificationError):  # an OSError, but retrying will not fix it
        return DeliveryError(f"the SMTP server's TLS certificate is not trusted ({exc.verify_message}): set "
                             "ALERTS_SMTP_CA_FILE to the CA that issued it", recoverable=False)
    if isinstance(exc, (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected,
                        aiosmtplib.SMTPTimeoutError, asyncio.TimeoutError, ConnectionError, OSError)):
        return DeliveryError(f"SMTP server not reached: {type(exc).__name__}", recoverable=True)
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return DeliveryError(f"SMTP answered {code} {getattr(exc, 'message', '')}".strip(),
                             recoverable=400 <= code < 500)
    return DeliveryError(f"SMTP failed: {type(exc).__name__}: {exc}", recoverable=True)
