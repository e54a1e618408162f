"""The SMTP client adapter: `ports.SmtpConnector` over aiosmtplib.

aiosmtplib frames replies and runs TLS; this module chooses what is sent and turns what goes wrong
into tokenpost errors, so no aiosmtplib exception leaves it:

- refused, reset, closed, timed out, TLS failures → `TransportError` (a certificate that does not
  verify → `TlsVerifyError` naming the server); STARTTLS not offered when the setting says
  starttls → `TransportError`: the session never goes on in plaintext;
- a reply outside the protocol (malformed, oversized, an unexpected code) → `RemoteProtocolError`;
- AUTH refused → `MailAuthError`; Exchange's policy refusals (`535 5.7.139`, `550 5.7.30`) →
  `MailPolicyError` with what the administrator must change; a 4xx to AUTH → `TransportError`
  (temporary: no other token would pass now);
- sender, recipient or data refused → `MailRejectedError` (transient for 4xx); a message over
  the server's SIZE limit (RFC 1870) → a permanent `MailRejectedError` before MAIL FROM, with
  nothing sent and the session as it was.

SIZE: when the server advertises the extension, MAIL FROM carries ``SIZE=<octets>`` (the exact
size the caller computed: CRLF line ends, before dot-stuffing); ``SIZE`` without a number or
``SIZE 0`` means no fixed limit (RFC 1870 §4).

SASL runs through aiosmtplib's public `execute_command`, one AUTH line or two steps as the SASL
core decides. DATA is streamed: aiosmtplib only sends whole messages, so after `354` the
dot-stuffed chunks go to the public `SMTPProtocol.write`, paced by the transport's public write
buffer size, and the final reply is read with `read_response` (see `_stream`).
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Final

import aiosmtplib
from aiosmtplib.protocol import SMTPProtocol

from tokenpost.adapters.smtp_replies import (
    auth_refusal,
    mapped,
    reason,
    recipients_refused,
    rejected,
    reply_text,
    too_large,
)
from tokenpost.adapters.tls import Purpose, client_context_async
from tokenpost.errors import (
    RemoteProtocolError,
    TransportError,
    UsageError,
)
from tokenpost.ports import Envelope, StepCallback, no_steps
from tokenpost.sasl import SMTP_COMMAND_LIMIT, SaslClient, auth_command
from tokenpost.settings.model import Security, SmtpSetting
from tokenpost.settings.network import Trust, trust_for
from tokenpost.text import Text

# Writes pause above HIGH buffered octets until the transport is down to LOW.
HIGH_WATER: Final = 1024 * 1024
LOW_WATER: Final = 256 * 1024
_DRAIN_POLL_S: Final = 0.001
MAX_SASL_ROUNDS: Final = 8  # LOGIN needs two, XOAUTH2/OAUTHBEARER one error challenge
QUIT_TIMEOUT_S: Final = 5.0
CLOSE_WAIT_S: Final = 2.0
_CLOSE_POLL_S: Final = 0.005
_ENVELOPE_ADDRESS: Final = re.compile(r"[\x21-\x7e]{1,254}")
_HOSTNAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_SIZE_LIMIT: Final = re.compile(r"[0-9]{1,20}")


class AioSmtpConnector:
    """Opens SMTP sessions per setting (`ports.SmtpConnector`). TLS follows `adapters.tls`:
    the setting's CA file, else `home_ca_file` (TOKENPOST_CA_FILE), else the system store."""

    def __init__(
        self, *, local_hostname: str | None = None, home_ca_file: str | None = None
    ) -> None:
        self._local_hostname = local_hostname or _default_local_hostname()
        self._home_ca_file = home_ca_file

    async def connect(
        self, setting: SmtpSetting, *, on_step: StepCallback = no_steps
    ) -> AioSmtpSession:
        """TCP, then implicit TLS / STARTTLS / none per the setting, greeting and EHLO.

        Reports "connect", "tls" (implicit), "greeting", "ehlo", "starttls", "ehlo" as each
        succeeds. Raises TransportError (TlsVerifyError), RemoteProtocolError, MailRejectedError
        (greeting or EHLO refused), UsageError (the CA file or the system store cannot be used).
        """
        where = f"{setting.server}:{setting.port}"
        trust = trust_for(setting.ca_file, self._home_ca_file)
        context = None
        if setting.security is not Security.NONE:
            context = await client_context_async(trust, Purpose.MAIL)
        sock = await _open_socket(setting.server, setting.port, setting.timeout)
        on_step("connect")
        smtp = aiosmtplib.SMTP(
            hostname=setting.server,
            sock=sock,
            use_tls=setting.security is Security.TLS,
            start_tls=False,
            tls_context=context,
            timeout=setting.timeout,
            local_hostname=self._local_hostname,
        )
        try:
            with mapped(where, trust):
                await self._handshake(smtp, setting, context, on_step)
        except BaseException:
            await _shut(smtp, smtp.protocol, smtp.transport)
            sock.close()
            raise
        return AioSmtpSession(smtp, where, trust, setting.timeout, on_step)

    async def _handshake(
        self,
        smtp: aiosmtplib.SMTP,
        setting: SmtpSetting,
        context: ssl.SSLContext | None,
        on_step: StepCallback,
    ) -> None:
        await smtp.connect()  # a greeting other than 220 raises SMTPConnectResponseError
        if setting.security is Security.TLS:
            on_step("tls")
        on_step("greeting")
        await _ehlo(smtp, on_step)
        if setting.security is not Security.STARTTLS or context is None:
            return
        if not smtp.supports_extension("starttls"):
            raise TransportError(
                "{server} does not offer STARTTLS: refusing to go on unencrypted "
                "(security tls needs its own port, usually 465)",
                server=setting.server,
            )
        try:
            await smtp.starttls(tls_context=context, server_hostname=setting.server)
        except aiosmtplib.SMTPResponseException as refusal:
            shown = reply_text(aiosmtplib.SMTPResponse(refusal.code, refusal.message))
            raise TransportError(
                "{server} refused STARTTLS: {response}", server=setting.server, response=shown
            ) from None
        on_step("starttls")
        await _ehlo(smtp, on_step)


class AioSmtpSession:
    """One SMTP connection after greeting, EHLO and TLS (`ports.SmtpSession`).

    After a transport failure the session is closed and every further use raises
    TransportError; a refused command leaves it usable (the transaction is reset)."""

    def __init__(
        self,
        smtp: aiosmtplib.SMTP,
        where: str,
        trust: Trust,
        timeout: float,
        on_step: StepCallback,
    ) -> None:
        self._smtp = smtp
        self._trust = trust
        # Kept to see the connection gone after close (the protocol object outlives STARTTLS).
        self._connection = (smtp.protocol, smtp.transport)
        self._where = where
        self._timeout = timeout
        self._on_step = on_step
        self._lock = asyncio.Lock()  # one command sequence at a time

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        return frozenset(m.upper() for m in self._smtp.server_auth_methods)

    async def authenticate(self, client: SaslClient) -> None:
        async with self._lock:
            with mapped(self._where, self._trust):
                try:
                    reply = await self._sasl(client)
                except BaseException:
                    # Mid-exchange the server takes any next line as a SASL answer.
                    self._smtp.close()
                    raise
            if reply.code != 235:
                raise auth_refusal(client, reply)
            self._on_step("auth")

    async def _sasl(self, client: SaslClient) -> aiosmtplib.SMTPResponse:
        line, _inline = auth_command("AUTH", client, limit=SMTP_COMMAND_LIMIT)
        reply = await _execute(self._smtp, line.reveal().encode("ascii"))
        rounds = 0
        while reply.code == 334:
            rounds += 1
            if rounds > MAX_SASL_ROUNDS:
                raise RemoteProtocolError(
                    "{mechanism}: the server never ended AUTH", mechanism=client.mechanism
                )
            answer = client.respond(reply.message)
            reply = await _execute(self._smtp, answer.reveal().encode("ascii"))
        return reply

    async def send(
        self,
        envelope: Envelope,
        message: Iterable[bytes],
        *,
        size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        async with self._lock:
            limit = self.size_limit
            if size is not None and limit and size > limit:
                raise too_large(size, limit, self._where)
            announced = size if limit is not None else None
            with mapped(self._where, self._trust):
                await self._transaction(envelope, announced)
                reply = await self._stream(message, on_progress)
            if reply.code != 250:
                raise rejected(Text("the message"), reply)

    @property
    def size_limit(self) -> int | None:
        """The largest message the server takes, in octets, from its EHLO (RFC 1870 §4): None
        when it does not offer SIZE, 0 when it sets no fixed limit (no number, 0, or a number
        that is not one)."""
        if not self._smtp.supports_extension("size"):
            return None
        value = self._smtp.esmtp_extensions.get("size", "").strip()
        return int(value) if _SIZE_LIMIT.fullmatch(value) else 0

    async def _transaction(self, envelope: Envelope, size: int | None) -> None:
        """MAIL (with ``SIZE=`` when `size` is given), every RCPT, DATA up to `354`. Refusals
        reset the transaction first: a message goes to all its recipients or to none."""
        mail = [b"MAIL", b"FROM:" + _path("sender", envelope.sender)]
        if size is not None:
            mail.append(b"SIZE=%d" % size)
        reply = await self._command(*mail)
        if reply.code != 250:
            await self._reset()
            if size is not None and reply.code == 552:  # over a limit (RFC 1870 §6.1)
                raise rejected(Text("a message of {octets} bytes", octets=size), reply)
            raise rejected(Text("the sender {address}", address=envelope.sender), reply)
        refused: list[tuple[str, aiosmtplib.SMTPResponse]] = []
        for recipient in envelope.recipients:
            reply = await self._command(b"RCPT", b"TO:" + _path("recipient", recipient))
            if reply.code not in (250, 251):
                refused.append((recipient, reply))
        if refused:
            await self._reset()
            raise recipients_refused(refused)
        reply = await self._command(b"DATA")
        if reply.code != 354:
            await self._reset()
            raise rejected(Text("the command {command}", command="DATA"), reply)

    async def _stream(
        self, message: Iterable[bytes], on_progress: Callable[[int], None] | None
    ) -> aiosmtplib.SMTPResponse:
        """Write the message dot-stuffed (RFC 5321 §4.5.2), then the end-of-data line, and read
        the reply.

        aiosmtplib's protocol drops reply bytes that arrive while no read is pending, so the
        final ".\\r\\n" and `read_response` follow each other with no suspension point between.
        Memory stays bounded: at most two chunks plus HIGH_WATER octets are in flight. If the
        message iterable raises, the connection is closed without the end-of-data line, so the
        server discards the partial message.
        """
        protocol = self._protocol()
        at_line_start = True
        written = 0
        held = b""  # the last chunk goes out with the end-of-data line: one write for most mail
        try:
            for chunk in message:
                if not chunk:
                    continue
                if held:
                    protocol.write(held)
                    await self._drain()
                held = _dot_stuffed(chunk, at_line_start)
                at_line_start = chunk.endswith(b"\n")
                written += len(chunk)
                if on_progress is not None:
                    on_progress(written)
            protocol.write(held + (b".\r\n" if at_line_start else b"\r\n.\r\n"))
            return await protocol.read_response(timeout=self._timeout)
        except BaseException:
            # A partial message, a lost connection or a late reply: the session cannot go on.
            self._smtp.close()
            raise

    async def _drain(self) -> None:
        """Wait while the transport buffers more than HIGH_WATER octets, until LOW_WATER."""
        transport = self._smtp.transport
        if not isinstance(transport, asyncio.WriteTransport):
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        if transport.get_write_buffer_size() <= HIGH_WATER:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while transport.get_write_buffer_size() > LOW_WATER:
            if transport.is_closing():
                raise aiosmtplib.SMTPServerDisconnected("Connection lost")
            if loop.time() > deadline:
                raise aiosmtplib.SMTPTimeoutError("Timed out writing the message")
            await asyncio.sleep(_DRAIN_POLL_S)

    def _protocol(self) -> SMTPProtocol:
        protocol = self._smtp.protocol
        if protocol is None:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        return protocol

    async def _command(self, *args: bytes) -> aiosmtplib.SMTPResponse:
        reply = await _execute(self._smtp, *args)
        if reply.code == 421:  # the server is closing the connection (RFC 5321 §3.8)
            self._smtp.close()
            raise TransportError(
                "{where} closed the session: {response}",
                where=self._where,
                response=reply_text(reply),
            )
        return reply

    async def _reset(self) -> None:
        reply = await self._command(b"RSET")
        if reply.code != 250:
            raise RemoteProtocolError(
                "{where} refused RSET: {response}", where=self._where, response=reply_text(reply)
            )

    async def close(self) -> None:
        """QUIT (best effort, briefly) and close. Never raises."""
        try:
            if self._smtp.is_connected:
                async with asyncio.timeout(min(self._timeout, QUIT_TIMEOUT_S)):
                    await self._smtp.quit()
                self._on_step("quit")
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            pass
        finally:
            await _shut(self._smtp, *self._connection)


async def _shut(
    smtp: aiosmtplib.SMTP, protocol: SMTPProtocol | None, transport: asyncio.BaseTransport | None
) -> None:
    """Close, then wait until the connection is gone, aborting it after CLOSE_WAIT_S.

    TLS says goodbye first (close_notify) and the socket closes only after: an event loop that
    ends before would leave it open."""
    smtp.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_WAIT_S
    while protocol is not None and protocol.transport is not None:
        if loop.time() > deadline:
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()
            break
        await asyncio.sleep(_CLOSE_POLL_S)
    await asyncio.sleep(0)  # a plain transport's close completes on the next loop iteration


def _dot_stuffed(chunk: bytes, at_line_start: bool) -> bytes:
    stuffed = chunk.replace(b"\n.", b"\n..")
    if at_line_start and stuffed.startswith(b"."):
        return b"." + stuffed
    return stuffed


async def _execute(smtp: aiosmtplib.SMTP, *args: bytes) -> aiosmtplib.SMTPResponse:
    """One command and its reply. Our arguments are checked before, so aiosmtplib's refusal of a
    control character in one (a ValueError) is reported, not a crash; nothing else is caught
    here, so a fault of the message stream is never taken for it."""
    try:
        return await smtp.execute_command(*args)
    except ValueError:
        raise UsageError("a command to the SMTP server held a control character") from None


async def _ehlo(smtp: aiosmtplib.SMTP, on_step: StepCallback) -> None:
    reply = await _execute(smtp, b"EHLO", (smtp.local_hostname or "localhost").encode())
    if reply.code != 250:
        raise rejected(Text("the command {command}", command="EHLO"), reply)
    smtp.last_ehlo_response = reply  # aiosmtplib parses the extensions and AUTH mechanisms
    on_step("ehlo")


async def _open_socket(host: str, port: int, timeout: float) -> socket.socket:  # noqa: ASYNC109
    """A connected non-blocking TCP socket to the first address of `host` that answers, within
    `timeout` seconds for the whole attempt (name lookup included)."""
    where = f"{host}:{port}"
    seconds = f"{timeout:g}"
    try:
        async with asyncio.timeout(timeout):
            return await _first_answering(host, port)
    except TimeoutError:
        raise TransportError(
            "cannot connect to {where}: timed out after {seconds} s", where=where, seconds=seconds
        ) from None
    except OSError as error:
        raise TransportError(
            "cannot connect to {where}: {reason}", where=where, reason=reason(error)
        ) from error


async def _first_answering(host: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        where = f"{host}:{port}"
        raise TransportError(
            "cannot connect to {where}: {host} has no address", where=where, host=host
        )
    failure: OSError | None = None
    for family, kind, proto, _name, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as error:
            sock.close()
            failure = error
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    assert failure is not None  # noqa: S101 - every address was tried and failed
    raise failure


def _path(role: str, address: str) -> bytes:
    """`<address>` for MAIL FROM / RCPT TO; printable ASCII without brackets only."""
    if not _ENVELOPE_ADDRESS.fullmatch(address) or "<" in address or ">" in address:
        raise UsageError(
            "{role}: {address!r} cannot be sent as an SMTP address", role=role, address=address
        )
    return b"<" + address.encode("ascii") + b">"


def _default_local_hostname() -> str:
    """The EHLO name: this host's name when it is a valid one, else an address literal."""
    name = socket.gethostname()
    return name if _HOSTNAME.fullmatch(name) else "[127.0.0.1]"
