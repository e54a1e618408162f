"""The POP3 client adapter: `ports.Pop3Connector` over asyncio streams and the `pop3.client` core.

The core does the protocol; this module only moves bytes, with one timeout on every connect,
read and write, and turns what goes wrong into tokenpost errors:

- connection refused, reset, closed, timed out, TLS failures → `TransportError` (a certificate
  that does not verify → `TlsVerifyError` naming the server);
- a server outside the protocol (oversized line, garbage, no STLS when STARTTLS is configured)
  → `RemoteProtocolError`;
- `-ERR` to AUTH, USER/PASS or APOP → `MailAuthError`, except the RFC 3206 codes that say the
  refusal is temporary (`[SYS/TEMP]`, `[IN-USE]`, `[LOGIN-DELAY]`): those are `TransportError`,
  because no new token or password would change them.

After any failure the session is unusable (`TransportError` on further use) and `close()` is
all that is left. Debug logging shows the exchange with AUTH, PASS and APOP arguments and every
SASL line replaced by ``***``; message data is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Final

from tokenpost.errors import (
    MailAuthError,
    OperationError,
    RemoteProtocolError,
    TlsVerifyError,
    TokenpostError,
    TransportError,
    UsageError,
)
from tokenpost.pop3.client import Argument, Pop3Client
from tokenpost.pop3.events import (
    NEED_DATA,
    ConnectionClosed,
    Continuation,
    Err,
    Event,
    Greeting,
    MultilineBody,
    MultilineEnd,
    Ok,
)
from tokenpost.pop3.listings import capability_tags, uidl_entries
from tokenpost.pop3.wire import LocalProtocolError, excerpt
from tokenpost.ports import StepCallback, no_steps
from tokenpost.sasl import SaslClient, apop_digest
from tokenpost.secret import Secret
from tokenpost.settings.model import PopSetting, Security

log = logging.getLogger("tokenpost.pop3")

READ_SIZE: Final = 64 * 1024
MAX_CAPA_OCTETS: Final = 64 * 1024
MAX_UIDL_ENTRIES: Final = 1_000_000  # a maildrop listing larger than this is refused
MAX_SASL_ROUNDS: Final = 8
REPLY_EXCERPT: Final = 200
_TEMPORARY_CODES: Final = frozenset({"SYS/TEMP", "IN-USE", "LOGIN-DELAY"})
_SECRET_VERBS: Final = frozenset({"PASS", "APOP"})


class Pop3ClientConnector:
    """`ports.Pop3Connector`: opens `Pop3ClientSession`s."""

    async def connect(
        self,
        setting: PopSetting,
        *,
        timeout: float = 60.0,  # noqa: ASYNC109  (the port's signature)
        on_step: StepCallback = no_steps,
    ) -> Pop3ClientSession:
        """Connect per `setting.security`; the session is in AUTHORIZATION after CAPA.

        Raises:
            UsageError: the CA file cannot be loaded.
            TransportError (TlsVerifyError), RemoteProtocolError, MailAuthError (greeting -ERR).
        """
        context = None if setting.security is Security.NONE else _ssl_context(setting.ca_file)
        session = Pop3ClientSession(setting.server, setting.port, timeout=timeout, on_step=on_step)
        try:
            await session.open(setting.security, context)
        except BaseException:
            await session.close()
            raise
        return session


class Pop3ClientSession:
    """`ports.Pop3Session` over one connection. Not safe for concurrent use."""

    def __init__(
        self, server: str, port: int, *, timeout: float, on_step: StepCallback = no_steps
    ) -> None:
        self._server = server
        self._port = port
        self._name = f"[{server}]:{port}" if ":" in server else f"{server}:{port}"
        self._timeout = timeout
        self._on_step = on_step
        self._core = Pop3Client()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._broken = False
        self._capabilities: frozenset[str] = frozenset()
        self._timestamp: str | None = None

    def __repr__(self) -> str:
        return f"<Pop3ClientSession {self._name} {self._core.state.value}>"

    @property
    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    @property
    def apop_timestamp(self) -> str | None:
        return self._timestamp

    # --- connection ------------------------------------------------------------------------

    async def open(self, security: Security, context: ssl.SSLContext | None) -> None:
        """Connect, (implicit TLS,) greeting, CAPA, (STLS and CAPA again)."""
        implicit = security is Security.TLS
        with self._failures():
            async with asyncio.timeout(self._timeout):
                self._reader, self._writer = await asyncio.open_connection(
                    self._server,
                    self._port,
                    ssl=context if implicit else None,
                    server_hostname=self._server if implicit else None,
                    ssl_handshake_timeout=self._timeout if implicit else None,
                )
            self._on_step("connect")
            if implicit:
                self._on_step("tls")
            await self._greeting()
            await self._capa()
            if security is Security.STARTTLS and context is not None:
                await self._starttls(context)

    async def _greeting(self) -> None:
        event = await self._event()
        if isinstance(event, Err):
            raise self._auth_refused(event, "the greeting")
        if not isinstance(event, Greeting):
            raise self._unexpected(event, "the greeting")
        self._timestamp = event.timestamp
        log.debug("%s S: +OK %s", self._name, excerpt(event.text))
        self._on_step("greeting")

    async def _capa(self) -> None:
        event = await self._command("CAPA")
        if isinstance(event, Err):
            self._capabilities = frozenset()  # a server without CAPA (RFC 1939 only)
        else:
            body = bytearray()
            while (chunk := await self._chunk("CAPA")) is not None:
                body += chunk
                if len(body) > MAX_CAPA_OCTETS:
                    raise RemoteProtocolError(f"CAPA reply over {MAX_CAPA_OCTETS} octets")
            self._capabilities = capability_tags(bytes(body))
        self._on_step("capa")

    async def _starttls(self, context: ssl.SSLContext) -> None:
        if "STLS" not in self._capabilities:
            raise RemoteProtocolError(
                f"{self._name} does not offer STLS; refusing to continue without TLS "
                "(check the port and the security setting)"
            )
        event = await self._command("STLS")
        if not isinstance(event, Ok):
            raise RemoteProtocolError(
                f"{self._name} refused STLS: {self._reply(event)}; refusing to continue without TLS"
            )
        writer = self._require_writer()
        async with asyncio.timeout(self._timeout):
            await writer.start_tls(
                context, server_hostname=self._server, ssl_handshake_timeout=self._timeout
            )
        self._on_step("starttls")
        await self._capa()  # RFC 2595 §4: what was said before TLS counts no more

    async def close(self) -> None:
        """Close without QUIT: the server deletes nothing. Never raises."""
        writer, self._writer, self._reader = self._writer, None, None
        self._broken = True
        if writer is None:
            return
        with suppress(Exception):
            writer.close()
            async with asyncio.timeout(min(self._timeout, 5.0)):
                await writer.wait_closed()

    # --- authorization ---------------------------------------------------------------------

    async def authenticate(self, client: SaslClient) -> None:
        """AUTH in the two-line form; every challenge is answered by `client`."""
        with self._failures():
            event = await self._command("AUTH", client.mechanism)
            for _ in range(MAX_SASL_ROUNDS):
                if not isinstance(event, Continuation):
                    break
                response = client.respond(event.challenge)
                log.debug("%s C: ***", self._name)
                await self._write(self._core.send_auth_response(response))
                event = await self._event()
                self._log_reply(event)
            if isinstance(event, Err):
                raise self._auth_refused(event, client.mechanism, client)
            if not isinstance(event, Ok):
                raise RemoteProtocolError(f"{self._name}: too many SASL challenges")
            self._on_step("auth")

    async def login(self, user: str, password: Secret) -> None:
        """USER/PASS."""
        with self._failures():
            for verb, argument in (("USER", user), ("PASS", password)):
                event = await self._command(verb, argument, user_input=True)
                if isinstance(event, Err):
                    raise self._auth_refused(event, verb)
            self._on_step("auth")

    async def apop(self, user: str, password: Secret) -> None:
        """APOP with the greeting's timestamp."""
        with self._failures():
            if self._timestamp is None:
                raise MailAuthError(
                    f"{self._name} does not offer APOP (its greeting has no timestamp)"
                )
            digest = apop_digest(self._timestamp, password)
            event = await self._command("APOP", user, digest, user_input=True)
            if isinstance(event, Err):
                raise self._auth_refused(event, "APOP")
            self._on_step("auth")

    # --- transaction -----------------------------------------------------------------------

    async def uidl(self) -> dict[int, str]:
        """Message number -> unique id for the whole maildrop."""
        with self._failures():
            event = await self._command("UIDL")
            if isinstance(event, Err):
                raise RemoteProtocolError(
                    f"{self._name} does not support UIDL: {self._reply(event)}"
                )
            listing: dict[int, str] = {}
            while (chunk := await self._chunk("UIDL")) is not None:
                for number, unique_id in uidl_entries(chunk):
                    if number in listing or len(listing) >= MAX_UIDL_ENTRIES:
                        raise RemoteProtocolError(
                            f"{self._name}: UIDL listing repeats message {number} or is too long"
                        )
                    listing[number] = unique_id
            return listing

    async def retrieve(self, number: int, sink: Callable[[bytes], None]) -> int:
        """RETR, streamed to `sink`; returns the octets delivered (CRLF line ends).

        An exception from `sink` propagates as it is, and ends the session."""
        with self._failures():
            event = await self._command("RETR", number)
            if isinstance(event, Err):
                raise RemoteProtocolError(
                    f"{self._name} refused RETR {number}: {self._reply(event)}"
                )
        size = 0
        while True:
            with self._failures():
                chunk = await self._chunk("RETR")
            if chunk is None:
                return size
            try:
                sink(chunk)
            except BaseException:
                self._break()
                raise
            size += len(chunk)

    async def delete(self, number: int) -> None:
        """DELE: marks the message; the server removes it at a successful QUIT."""
        with self._failures():
            event = await self._command("DELE", number)
            if isinstance(event, Err):
                raise RemoteProtocolError(
                    f"{self._name} refused DELE {number}: {self._reply(event)}"
                )

    async def quit(self) -> None:
        """QUIT (the server enters UPDATE and deletes what was marked), then close.

        Raises:
            TransportError: -ERR (some deletions failed: they stay on the server) or no reply.
        """
        try:
            with self._failures():
                event = await self._command("QUIT")
                if isinstance(event, Err):
                    raise TransportError(
                        f"{self._name} could not finish the session: {self._reply(event)}"
                    )
                self._on_step("quit")
        finally:
            await self.close()

    # --- plumbing --------------------------------------------------------------------------

    async def _command(self, verb: str, *args: Argument, user_input: bool = False) -> Event:
        """Send one command and return the first event of its reply."""
        try:
            line = self._core.send_command(verb, *args)
        except LocalProtocolError as exc:
            if not user_input:
                raise
            raise UsageError(
                f"{verb}: the user name or password cannot be sent in a POP3 command ({exc})"
            ) from None
        log.debug("%s C: %s", self._name, _loggable(verb, args))
        await self._write(line)
        event = await self._event()
        self._log_reply(event)
        return event

    async def _chunk(self, verb: str) -> bytes | None:
        """The next data chunk of a multi-line reply whose +OK has been read; None at its end."""
        event = await self._event()
        if isinstance(event, MultilineEnd):
            return None
        if not isinstance(event, MultilineBody):
            raise self._unexpected(event, verb)
        return event.data

    async def _event(self) -> Event:
        while (event := self._core.next_event()) is NEED_DATA:
            reader = self._require_reader()
            async with asyncio.timeout(self._timeout):
                data = await reader.read(READ_SIZE)
            if not data:
                raise TransportError(f"{self._name} closed the connection")
            self._core.receive_data(data)
        return event

    async def _write(self, data: bytes) -> None:
        writer = self._require_writer()
        writer.write(data)
        async with asyncio.timeout(self._timeout):
            await writer.drain()

    def _require_reader(self) -> asyncio.StreamReader:
        if self._reader is None:
            raise TransportError(f"the connection to {self._name} is closed")
        return self._reader

    def _require_writer(self) -> asyncio.StreamWriter:
        if self._writer is None:
            raise TransportError(f"the connection to {self._name} is closed")
        return self._writer

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """Refuse a broken session; translate I/O failures; any failure breaks the session."""
        if self._broken:
            raise TransportError(f"the connection to {self._name} is no longer usable")
        try:
            yield
        except MailAuthError:
            raise  # a clean refusal: the connection is still in AUTHORIZATION
        except BaseException as exc:
            self._break()
            if isinstance(exc, RemoteProtocolError) and not str(exc).startswith(self._name):
                raise RemoteProtocolError(f"{self._name}: {exc}") from exc
            translated = self._translate(exc) if isinstance(exc, Exception) else None
            if translated is None:
                raise
            raise translated from exc

    def _break(self) -> None:
        self._broken = True
        if self._writer is not None:
            self._writer.transport.abort()

    def _translate(self, exc: Exception) -> TokenpostError | None:
        """The tokenpost error for an I/O failure; None for anything else (our own errors, a
        programming error such as LocalProtocolError, the sink's own failure)."""
        name = self._name
        if isinstance(exc, TimeoutError):
            return TransportError(f"{name} did not answer within {self._timeout:g} s")
        if isinstance(exc, ssl.SSLCertVerificationError):
            detail = exc.verify_message or _reason(exc)
            return TlsVerifyError(
                f"the certificate of {name} did not verify: {detail} "
                "(use --ca-file for a private CA)"
            )
        if isinstance(exc, ssl.SSLError):
            return TransportError(f"TLS with {name} failed ({_reason(exc)})")
        if isinstance(exc, OSError):
            return TransportError(f"the connection to {name} failed: {_reason(exc)}")
        return None

    def _auth_refused(
        self, event: Err, what: str, client: SaslClient | None = None
    ) -> OperationError:
        reply = self._reply(event)
        if event.code in _TEMPORARY_CODES:
            return TransportError(f"{self._name} is not available now ({what}): {reply}")
        status = client.error.status if client is not None and client.error else ""
        return MailAuthError(
            f"{self._name} refused authentication ({what}): {reply}", reply=reply, status=status
        )

    def _unexpected(self, event: Event, what: str) -> RemoteProtocolError:
        if isinstance(event, ConnectionClosed):
            return RemoteProtocolError(f"{self._name} closed the connection during {what}")
        return RemoteProtocolError(f"{self._name}: unexpected {type(event).__name__} in {what}")

    @staticmethod
    def _reply(event: Event) -> str:
        if isinstance(event, Err):
            return excerpt(f"-ERR {event.text}", limit=REPLY_EXCERPT)
        if isinstance(event, Ok):
            return excerpt(f"+OK {event.text}", limit=REPLY_EXCERPT)
        return type(event).__name__

    def _log_reply(self, event: Event) -> None:
        if isinstance(event, Continuation):
            log.debug("%s S: + ***", self._name)
        elif isinstance(event, Ok | Err):
            log.debug("%s S: %s", self._name, self._reply(event))


def _ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificate and host name verification on; `ca_file` alone is trusted when given."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        source = ca_file or "of the system trust store"
        raise UsageError(f"cannot load CA file {source}: {_reason(exc)}") from exc


def _loggable(verb: str, args: tuple[Argument, ...]) -> str:
    """The command as the debug log shows it: credentials become ***."""
    if verb in _SECRET_VERBS:
        shown = [str(arg) for arg in args[:-1]] + ["***"]
    elif verb == "AUTH":
        shown = [str(args[0])] if args else []
    else:
        shown = [str(arg) for arg in args]
    return " ".join([verb, *shown])


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and getattr(exc, "reason", None):
        return str(exc.reason)
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not resolved"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__
