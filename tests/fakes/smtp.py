"""A real SMTP server on 127.0.0.1 for tests, built on aiosmtpd's threaded ``Controller``.

What it does, like a mail submission server would:

* STARTTLS (``tls="starttls"``, the default), implicit TLS / SMTPS (``tls="implicit"``) or plain
  (``tls="none"``), with a certificate issued at start by a throw-away CA (``trustme``), written to a
  temporary folder: clients verify with :attr:`FakeSMTP.ca_path` (or :meth:`client_tls_context`);
* AUTH PLAIN / LOGIN against one ``username`` / ``password``; AUTH is offered only over TLS, and
  MAIL without AUTH answers ``530 5.7.0 Authentication required`` (when a username is configured).
  ``auth_require_tls=False`` makes a careless server that also takes AUTH in plain text (with or
  without offering STARTTLS); :attr:`FakeSMTP.auth_commands` records every AUTH command that arrived,
  and whether the session was encrypted then, whatever the answer: where credentials went;
* per-recipient answers at RCPT: ``temp_fail`` addresses answer 450 (mailbox busy), ``perm_fail``
  ones 550 (no such user); :meth:`set_recipient_answer` for any other; :meth:`fail_next` injects an
  answer at MAIL / RCPT / DATA;
* :meth:`go_down` / :meth:`come_up` stop the server and start it again on the same port (connections
  are refused meanwhile), and :meth:`down` does both around a ``with`` block;
* records each accepted message: envelope, the parsed :class:`email.message.EmailMessage` (every
  header), the raw bytes, who authenticated and whether the session was encrypted.

    with FakeSMTP() as smtp:
        asyncio.run(aiosmtplib.send(msg, **smtp.client_kwargs()))
        assert smtp.messages[0].message["Subject"] == "..."
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import functools
import shutil
import ssl
import tempfile
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session

TlsMode = Literal["starttls", "implicit", "none"]

TEMP_FAIL_ANSWER = "450 4.2.1 {address}: Mailbox busy, try again later"
PERM_FAIL_ANSWER = "550 5.1.1 {address}: Recipient address rejected: User unknown in local recipient table"


@dataclass
class ReceivedMail:
    """One message the server accepted (answered 250 to DATA)."""

    mail_from: str
    rcpt_tos: list[str]  # the accepted recipients only
    message: EmailMessage  # parsed with email.policy.default: msg["Subject"], msg.get_content() ...
    raw: bytes
    peer: Any
    username: Optional[str]  # the AUTH login, or None
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS)
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    time: float = field(default_factory=time.time)


@dataclass
class AuthAttempt:
    mechanism: str
    login: str
    success: bool
    tls: bool


@dataclass
class AuthCommand:
    """An AUTH command as it arrived (before any answer): the mechanism and whether it was encrypted."""

    mechanism: str
    tls: bool


@dataclass
class _Injected:
    command: str
    answer: str
    remaining: Optional[int]
    address: Optional[str]


class _Session(Session):
    # aiosmtpd logs a deprecation warning each time its own AUTH code sets login_data; keep quiet.
    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _SMTP(SMTP):
    """aiosmtpd's SMTP session, knowing that an implicit-TLS connection is encrypted.

    aiosmtpd treats a session as "TLS" only after STARTTLS, so over SMTPS it would refuse AUTH
    (``auth_require_tls``); marking the TLS transport as the session's TLS layer fixes that.
    """

    on_auth = None  # set by the controller: called with each AUTH command, before it is answered

    def _create_session(self) -> Session:
        return _Session(self.loop)

    @functools.wraps(SMTP.smtp_AUTH)  # keeps aiosmtpd's syntax attributes (HELP, EHLO)
    async def smtp_AUTH(self, arg: str) -> None:
        if self.on_auth is not None:
            self.on_auth(AuthCommand(arg.split(" ", 1)[0].upper(), self._tls_protocol is not None))
        return await super().smtp_AUTH(arg)

    def connection_made(self, transport) -> None:
        starttls_upgrade = self._original_transport is not None
        super().connection_made(transport)
        if not starttls_upgrade and transport.get_extra_info("ssl_object") is not None:
            self._tls_protocol = transport  # only its truth is used outside STARTTLS itself
            self.session.ssl = {"cipher": transport.get_extra_info("cipher")}


class _Controller(Controller):
    """aiosmtpd's Controller, able to bind port 0 and keeping track of the live connections."""

    def __init__(self, *args, on_protocol, on_auth, **kwargs):
        self._on_protocol = on_protocol
        self._on_auth = on_auth
        super().__init__(*args, **kwargs)

    def factory(self):
        smtp = _SMTP(self.handler, **self.SMTP_kwargs)
        smtp.on_auth = self._on_auth
        self._on_protocol(smtp)
        return smtp

    def _trigger_server(self):
        # With port 0 the OS picked the port: learn it before the Controller connects to itself.
        if self.server is not None and self.server.sockets:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    def __init__(self, fake: "FakeSMTP"):
        self.fake = fake

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        injected = self.fake._take_injected("MAIL", address)
        await self.fake._delay()
        if injected:
            return injected
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.fake._take_injected("RCPT", address) or self.fake._recipient_answer(address)
        await self.fake._delay()
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        injected = self.fake._take_injected("DATA", None)
        await self.fake._delay()
        if injected:
            return injected
        raw = envelope.original_content or (
            envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        )
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        auth = session.auth_data
        username = None
        if isinstance(auth, LoginPassword):
            username = auth.login.decode("utf-8", "replace")
        queue_id = uuid.uuid4().hex[:10].upper()
        self.fake._record(ReceivedMail(
            mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), message=message, raw=raw,
            peer=session.peer, username=username, tls=self.fake._is_tls(server),
            mail_options=list(envelope.mail_options), rcpt_options=list(envelope.rcpt_options),
        ))
        return f"250 2.0.0 OK: queued as {queue_id}"


class FakeSMTP:
    """An SMTP server on 127.0.0.1 (see the module doc). Use as a context manager or start()/stop().

    :param tls: ``"starttls"`` (offers STARTTLS; AUTH only after it), ``"implicit"`` (SMTPS: TLS from
        the first byte) or ``"none"``.
    :param username: the one login AUTH accepts (``None``: no authentication, anyone may send).
    :param auth_required: refuse MAIL before AUTH (default: when a username is set).
    :param require_starttls: refuse everything but EHLO/NOOP/QUIT before STARTTLS.
    :param auth_require_tls: offer AUTH only on an encrypted session (as real servers do). With
        ``tls="none"`` pass ``username=None`` (no auth) or ``auth_require_tls=False``.
    :param temp_fail: recipients answered ``450`` at RCPT; ``perm_fail``: answered ``550``.
    """

    def __init__(
        self,
        *,
        tls: TlsMode = "starttls",
        username: Optional[str] = "alerts",
        password: str = "s3cret-password",
        auth_required: Optional[bool] = None,
        require_starttls: bool = False,
        auth_require_tls: bool = True,
        temp_fail: Iterable[str] = ("busy@example.com",),
        perm_fail: Iterable[str] = ("nobody@example.com",),
        host: str = "127.0.0.1",
        port: int = 0,
        server_hostname: str = "fake-smtp.test",
        data_size_limit: int = 10 * 1024 * 1024,
    ) -> None:
        if tls not in ("starttls", "implicit", "none"):
            raise ValueError(f"tls must be 'starttls', 'implicit' or 'none', not {tls!r}")
        self.tls: TlsMode = tls
        self.username = username
        self.password = password
        self.auth_required = (username is not None) if auth_required is None else auth_required
        self.require_starttls = require_starttls
        self.auth_require_tls = auth_require_tls
        self.host = host
        self.port = port
        self.server_hostname = server_hostname
        self.data_size_limit = data_size_limit

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._messages: list[ReceivedMail] = []
        self.auth_attempts: list[AuthAttempt] = []  # what the authenticator judged (accepted mechanisms)
        self.auth_commands: list[AuthCommand] = []  # every AUTH command received, answered or refused
        self._answers: dict[str, str] = {}
        self._injected: list[_Injected] = []
        self._delay_seconds = 0.0
        for address in temp_fail:
            self.set_recipient_answer(address, TEMP_FAIL_ANSWER.format(address=address))
        for address in perm_fail:
            self.set_recipient_answer(address, PERM_FAIL_ANSWER.format(address=address))

        self._controller: Optional[_Controller] = None
        self._protocols: "weakref.WeakSet[SMTP]" = weakref.WeakSet()
        self._tmpdir: Optional[Path] = None
        self._server_ctx: Optional[ssl.SSLContext] = None
        self.ca_path: Optional[str] = None  # PEM of the CA that signed the server certificate
        self.cert_path: Optional[str] = None  # PEM of the server certificate (chain)
        self.key_path: Optional[str] = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FakeSMTP":
        if self._controller is not None:
            raise RuntimeError("FakeSMTP already started")
        if self.tls != "none" and self._server_ctx is None:
            self._make_certificates()
        self._start_controller()
        return self

    def stop(self) -> None:
        """Stop the server and delete its certificates."""
        self.go_down()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> "FakeSMTP":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def go_down(self) -> None:
        """Stop listening and drop open connections: clients now get 'connection refused'."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        loop = controller.loop
        protocols = list(self._protocols)

        def close_all():
            for proto in protocols:
                transport = getattr(proto, "transport", None)
                if transport is not None:
                    transport.close()

        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(close_all)
        controller.stop()

    def come_up(self) -> None:
        """Start again on the same port (after :meth:`go_down`)."""
        if self._controller is None:
            self._start_controller()

    @contextlib.contextmanager
    def down(self) -> Iterator["FakeSMTP"]:
        """``with smtp.down(): ...`` — the server is down inside the block and up again after it."""
        self.go_down()
        try:
            yield self
        finally:
            self.come_up()

    @property
    def is_up(self) -> bool:
        return self._controller is not None

    # ------------------------------------------------------------------ for clients

    @property
    def use_tls(self) -> bool:
        """True for implicit TLS: aiosmtplib's ``use_tls``."""
        return self.tls == "implicit"

    @property
    def start_tls(self) -> bool:
        """True when the server offers STARTTLS: aiosmtplib's ``start_tls``."""
        return self.tls == "starttls"

    def client_tls_context(self) -> ssl.SSLContext:
        """A client SSLContext that trusts this server's certificate (hostname checks on)."""
        if self.ca_path is None:
            raise RuntimeError("this FakeSMTP has no TLS")
        return ssl.create_default_context(cafile=self.ca_path)

    def client_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``aiosmtplib.send`` / ``aiosmtplib.SMTP`` that reach this server."""
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port, "timeout": 5}
        if self.tls == "implicit":
            kwargs.update(use_tls=True, cert_bundle=self.ca_path)
        elif self.tls == "starttls":
            kwargs.update(start_tls=True, cert_bundle=self.ca_path)
        else:
            kwargs.update(start_tls=False)
        if self.username is not None:
            kwargs.update(username=self.username, password=self.password)
        kwargs.update(overrides)
        return kwargs

    # ------------------------------------------------------------------ programming answers

    def set_recipient_answer(self, address: str, answer: Optional[str]) -> None:
        """Answer RCPT TO:<address> with ``answer`` (e.g. ``"452 4.2.2 Mailbox full"``); None clears."""
        with self._lock:
            if answer is None:
                self._answers.pop(address.lower(), None)
            else:
                self._answers[address.lower()] = answer

    def fail_next(self, command: Literal["MAIL", "RCPT", "DATA"], answer: str = "451 4.3.0 Temporary failure",
                  *, times: Optional[int] = 1, address: Optional[str] = None) -> None:
        """Answer the next ``times`` MAIL / RCPT / DATA commands (for ``address``) with ``answer``."""
        command = command.upper()
        if command not in ("MAIL", "RCPT", "DATA"):
            raise ValueError("command must be MAIL, RCPT or DATA")
        with self._lock:
            self._injected.append(_Injected(command, answer, times, address.lower() if address else None))

    def set_delay(self, seconds: float) -> None:
        """Hold every MAIL / RCPT / DATA answer for ``seconds`` (to test client timeouts); 0 clears."""
        self._delay_seconds = max(0.0, float(seconds))

    # ------------------------------------------------------------------ what happened

    @property
    def messages(self) -> list[ReceivedMail]:
        """The accepted messages, oldest first (a copy)."""
        with self._lock:
            return list(self._messages)

    def messages_to(self, address: str) -> list[ReceivedMail]:
        address = address.lower()
        return [m for m in self.messages if address in (r.lower() for r in m.rcpt_tos)]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until at least ``n`` messages were accepted; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._messages)} of {n} mails arrived within {timeout}s")
                self._changed.wait(left)
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self.auth_attempts.clear()
            self.auth_commands.clear()

    # ------------------------------------------------------------------ internals

    def _make_certificates(self) -> None:
        import trustme

        self._tmpdir = Path(tempfile.mkdtemp(prefix="fake-smtp-"))
        ca = trustme.CA()
        cert = ca.issue_cert(self.host, "localhost", self.server_hostname)
        ca_path = self._tmpdir / "ca.pem"
        cert_path = self._tmpdir / "server-chain.pem"
        key_path = self._tmpdir / "server-key.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        cert.private_key_pem.write_to_path(str(key_path))
        with cert_path.open("wb") as f:
            for blob in cert.cert_chain_pems:
                f.write(blob.bytes())
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert_path), str(key_path))
        self._server_ctx = ctx
        self.ca_path, self.cert_path, self.key_path = str(ca_path), str(cert_path), str(key_path)

    def _start_controller(self) -> None:
        smtp_kwargs: dict[str, Any] = dict(
            server_hostname=self.server_hostname,
            ident="FakeSMTP ESMTP",
            data_size_limit=self.data_size_limit,
            auth_required=self.auth_required,
            require_starttls=self.require_starttls and self.tls == "starttls",
            auth_require_tls=self.auth_require_tls,  # like real servers: no password over plain text
            timeout=60,
        )
        if self.username is not None:
            smtp_kwargs["authenticator"] = self._authenticate
        if self.tls == "starttls":
            smtp_kwargs["tls_context"] = self._server_ctx
        controller = _Controller(
            _Handler(self), hostname=self.host, port=self.port,
            ssl_context=self._server_ctx if self.tls == "implicit" else None,
            on_protocol=self._protocols.add, on_auth=self._record_auth, **smtp_kwargs,
        )
        controller.start()
        self.port = controller.port
        self._controller = controller

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = False
        login = ""
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            ok = login == self.username and auth_data.password.decode("utf-8", "replace") == self.password
        with self._lock:
            self.auth_attempts.append(AuthAttempt(mechanism, login, ok, self._is_tls(server)))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _record_auth(self, command: AuthCommand) -> None:
        with self._lock:
            self.auth_commands.append(command)

    def _is_tls(self, server: SMTP) -> bool:
        return getattr(server, "_tls_protocol", None) is not None

    def _recipient_answer(self, address: str) -> Optional[str]:
        with self._lock:
            return self._answers.get(address.lower())

    def _take_injected(self, command: str, address: Optional[str]) -> Optional[str]:
        with self._lock:
            for inj in self._injected:
                if inj.command == command and (inj.address is None or inj.address == (address or "").lower()):
                    if inj.remaining is not None:
                        inj.remaining -= 1
                        if inj.remaining <= 0:
                            self._injected.remove(inj)
                    return inj.answer
        return None

    async def _delay(self) -> None:
        if self._delay_seconds:
            await asyncio.sleep(self._delay_seconds)

    def _record(self, mail: ReceivedMail) -> None:
        with self._changed:
            self._messages.append(mail)
            self._changed.notify_all()
