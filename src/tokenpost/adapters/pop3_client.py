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

Every message names the server and ends in what the administrator can do about it; what the
core reports (a protocol error without a server) is passed on inside such a message. After any
failure the session is unusable (`TransportError` on further use) and `close()` is all that is
left. Debug logging shows the exchange with AUTH, PASS and APOP arguments and every
SASL line replaced by ``***``; message data is never logged.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Final

from tokenpost.adapters import pop3_failures as fail
from tokenpost.adapters.tls import Purpose, client_context_async
from tokenpost.errors import MailAuthError, RemoteProtocolError
from tokenpost.pop3.client import Argument, Pop3Client
from tokenpost.pop3.events import (
    NEED_DATA,
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
from tokenpost.settings.network import SYSTEM_TRUST, Trust, trust_for

log = logging.getLogger("tokenpost.pop3")

READ_SIZE: Final = 64 * 1024
MAX_CAPA_OCTETS: Final = 64 * 1024
MAX_UIDL_ENTRIES: Final = 1_000_000  # a maildrop listing larger than this is refused
MAX_SASL_ROUNDS: Final = 8
_SECRET_VERBS: Final = frozenset({"PASS", "APOP"})


class Pop3ClientConnector:
    """`ports.Pop3Connector`: opens `Pop3ClientSession`s. TLS follows `adapters.tls`: the
    setting's CA file, else `home_ca_file` (TOKENPOST_CA_FILE), else the system store."""

    def __init__(self, *, home_ca_file: str | None = None) -> None:
        self._home_ca_file = home_ca_file

    async def connect(
        self,
        setting: PopSetting,
        *,
        timeout: float = 60.0,  # noqa: ASYNC109  (the port's signature)
        on_step: StepCallback = no_steps,
    ) -> Pop3ClientSession:
        """Connect per `setting.security`; the session is in AUTHORIZATION after CAPA.

        Raises:
            UsageError: the CA file or the system store cannot be used.
            TransportError (TlsVerifyError), RemoteProtocolError, MailAuthError (greeting -ERR).
        """
        trust = trust_for(setting.ca_file, self._home_ca_file)
        context = None
        if setting.security is not Security.NONE:
            context = await client_context_async(trust, Purpose.MAIL)
        session = Pop3ClientSession(
            setting.server, setting.port, timeout=timeout, on_step=on_step, trust=trust
        )
        try:
            await session.open(setting.security, context)
        except BaseException:
            await session.close()
            raise
        return session


class Pop3ClientSession:
    """`ports.Pop3Session` over one connection. Not safe for concurrent use."""

    def __init__(
        self,
        server: str,
        port: int,
        *,
        timeout: float,
        on_step: StepCallback = no_steps,
        trust: Trust = SYSTEM_TRUST,
    ) -> None:
        self._server = server
        self._trust = trust  # what the certificate is checked against, for messages
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
            raise fail.auth_refused(self._name, event, fail.GREETING)
        if not isinstance(event, Greeting):
            raise fail.unexpected(self._name, event, fail.GREETING)
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
                    raise RemoteProtocolError(
                        "CAPA reply over {limit} octets", limit=MAX_CAPA_OCTETS
                    )
            self._capabilities = capability_tags(bytes(body))
        self._on_step("capa")

    async def _starttls(self, context: ssl.SSLContext) -> None:
        if "STLS" not in self._capabilities:
            raise fail.no_stls(self._name)
        event = await self._command("STLS")
        if not isinstance(event, Ok):
            raise fail.stls_refused(self._name, event)
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
                raise fail.auth_refused(self._name, event, client.mechanism, client)
            if not isinstance(event, Ok):
                raise fail.too_many_challenges(self._name)
            self._on_step("auth")

    async def login(self, user: str, password: Secret) -> None:
        """USER/PASS."""
        with self._failures():
            for verb, argument in (("USER", user), ("PASS", password)):
                event = await self._command(verb, argument, user_input=True)
                if isinstance(event, Err):
                    raise fail.auth_refused(self._name, event, verb)
            self._on_step("auth")

    async def apop(self, user: str, password: Secret) -> None:
        """APOP with the greeting's timestamp."""
        with self._failures():
            if self._timestamp is None:
                raise fail.no_apop(self._name)
            digest = apop_digest(self._timestamp, password)
            event = await self._command("APOP", user, digest, user_input=True)
            if isinstance(event, Err):
                raise fail.auth_refused(self._name, event, "APOP")
            self._on_step("auth")

    # --- transaction -----------------------------------------------------------------------

    async def uidl(self) -> dict[int, str]:
        """Message number -> unique id for the whole maildrop."""
        with self._failures():
            event = await self._command("UIDL")
            if isinstance(event, Err):
                raise fail.no_uidl(self._name, event)
            listing: dict[int, str] = {}
            while (chunk := await self._chunk("UIDL")) is not None:
                for number, unique_id in uidl_entries(chunk):
                    if number in listing or len(listing) >= MAX_UIDL_ENTRIES:
                        raise fail.bad_listing(self._name, number)
                    listing[number] = unique_id
            return listing

    async def retrieve(self, number: int, sink: Callable[[bytes], None]) -> int:
        """RETR, streamed to `sink`; returns the octets delivered (CRLF line ends).

        An exception from `sink` propagates as it is, and ends the session."""
        with self._failures():
            event = await self._command("RETR", number)
            if isinstance(event, Err):
                raise fail.retr_refused(self._name, number, event)
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
                raise fail.dele_refused(self._name, number, event)

    async def quit(self) -> None:
        """QUIT (the server enters UPDATE and deletes what was marked), then close.

        Raises:
            TransportError: -ERR (some deletions failed: they stay on the server) or no reply.
        """
        try:
            with self._failures():
                event = await self._command("QUIT")
                if isinstance(event, Err):
                    raise fail.quit_refused(self._name, event)
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
            raise fail.unsendable(verb, exc) from None
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
            raise fail.unexpected(self._name, event, verb)
        return event.data

    async def _event(self) -> Event:
        while (event := self._core.next_event()) is NEED_DATA:
            reader = self._require_reader()
            async with asyncio.timeout(self._timeout):
                data = await reader.read(READ_SIZE)
            if not data:
                raise fail.closed_by_server(self._name)
            self._core.receive_data(data)
        return event

    async def _write(self, data: bytes) -> None:
        writer = self._require_writer()
        writer.write(data)
        async with asyncio.timeout(self._timeout):
            await writer.drain()

    def _require_reader(self) -> asyncio.StreamReader:
        if self._reader is None:
            raise fail.closed(self._name)
        return self._reader

    def _require_writer(self) -> asyncio.StreamWriter:
        if self._writer is None:
            raise fail.closed(self._name)
        return self._writer

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """Refuse a broken session; translate I/O failures; any failure breaks the session."""
        if self._broken:
            raise fail.unusable(self._name)
        try:
            yield
        except MailAuthError:
            raise  # a clean refusal: the connection is still in AUTHORIZATION
        except BaseException as exc:
            self._break()
            if isinstance(exc, RemoteProtocolError) and not str(exc).startswith(self._name):
                raise fail.broken_protocol(self._name, exc) from exc
            failure = None
            if isinstance(exc, Exception):
                failure = fail.io_failure(self._name, exc, timeout=self._timeout, trust=self._trust)
            if failure is None:
                raise
            raise failure from exc

    def _break(self) -> None:
        self._broken = True
        if self._writer is not None:
            self._writer.transport.abort()

    def _log_reply(self, event: Event) -> None:
        if isinstance(event, Continuation):
            log.debug("%s S: + ***", self._name)
        elif isinstance(event, Ok | Err):
            log.debug("%s S: %s", self._name, fail.reply_text(event))


def _loggable(verb: str, args: tuple[Argument, ...]) -> str:
    """The command as the debug log shows it: credentials become ***."""
    if verb in _SECRET_VERBS:
        shown = [str(arg) for arg in args[:-1]] + ["***"]
    elif verb == "AUTH":
        shown = [str(args[0])] if args else []
    else:
        shown = [str(arg) for arg in args]
    return " ".join([verb, *shown])
