"""A sandbox SMTP submission server (aiosmtpd) that accepts the sandbox's OAuth tokens.

Two listeners on 127.0.0.1: STARTTLS (AUTH only after TLS) and implicit TLS. Mechanisms XOAUTH2
(protocols.md §1.11, §2.7) and OAUTHBEARER (RFC 7628), both with an initial response or after an
empty ``334 ``; PLAIN and LOGIN against the passwords in the knobs. A token is good when the
authorization server's introspection says it is active for the account named in the SASL blob,
asked anew on every AUTH (a revoked token fails at once).

Files in DIR: ready.json (written once listening), knobs.json (see `smtpknobs`, read per
connection), stats.json and messages/NNNNNN.eml + NNNNNN.json (the envelope), each written
atomically; a message's .json is written after its .eml. SIGUSR1 zeroes the stats.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import logging
import os
import signal
import ssl
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import httpx
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax
from aiosmtpd.smtp import auth_mechanism as _auth_mechanism

from tokenpost.errors import RemoteProtocolError, TransportError, ValidationError
from tokenpost.secret import Secret
from tokenpost_sandbox.certs import TlsFiles
from tokenpost_sandbox.introspect import (
    AuthserverReady,
    introspect_username,
    introspection_client,
)
from tokenpost_sandbox.smtpfiles import (
    MESSAGES_DIR,
    READY_FILE,
    STATS_FILE,
    MessageStore,
    Stats,
    write_json_atomically,
)
from tokenpost_sandbox.smtpknobs import KNOBS_FILE, SmtpKnobs, load_knobs
from tokenpost_sandbox.smtpreplies import (
    BASIC_RETIRED,
    GOOGLE_XOAUTH2_ERROR,
    HOSTNAME,
    NOT_AUTHENTICATED,
    OAUTHBEARER_ERROR,
    REPLIES,
    TEMPORARY_FAILURE,
    UNRECOGNIZED_MECHANISM,
    block_reply,
    greeting_ident,
)
from tokenpost_sandbox.smtpsasl import parse_oauthbearer, parse_xoauth2

HOST: Final = "127.0.0.1"
# RFC 4954 §4: "12288 octets is considered to be a sufficient line length limit" for SASL lines.
AUTH_LINE_LIMIT: Final = 12288
STREAM_LINE_LIMIT: Final = 16384


class Listener(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who authenticated, and how: the session's `auth_data`."""

    user: str
    mechanism: str


class SubmissionHandler:
    """aiosmtpd handler shared by every connection; per-connection state is on the server."""

    def __init__(self, directory: Path, authserver: AuthserverReady, http: httpx.AsyncClient):
        self.authserver = authserver
        self.http = http
        self.stats = Stats(directory / STATS_FILE)
        self.messages = MessageStore(directory / MESSAGES_DIR)

    # -- mechanisms -----------------------------------------------------------------------

    @_auth_mechanism("XOAUTH2")
    async def auth_XOAUTH2(self, server: SubmissionSMTP, args: list[str]) -> AuthResult:
        blob = await _initial_response(server, args)
        if blob is None:
            self.stats.auth("XOAUTH2", "aborted")
            return AuthResult(success=False, handled=True)
        return await self._bearer(server, "XOAUTH2", parse_xoauth2(blob))

    @_auth_mechanism("OAUTHBEARER")
    async def auth_OAUTHBEARER(self, server: SubmissionSMTP, args: list[str]) -> AuthResult:
        blob = await _initial_response(server, args)
        if blob is None:
            self.stats.auth("OAUTHBEARER", "aborted")
            return AuthResult(success=False, handled=True)
        return await self._bearer(server, "OAUTHBEARER", parse_oauthbearer(blob))

    def authenticate_password(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """PLAIN and LOGIN (aiosmtpd's own mechanisms) against the knobs' passwords."""
        if not isinstance(server, SubmissionSMTP) or not isinstance(auth_data, LoginPassword):
            raise TypeError("authenticate_password serves SubmissionSMTP's PLAIN and LOGIN")
        knobs = server.knobs
        if knobs.basic_retired:
            self.stats.auth(mechanism, "basic_retired")
            return AuthResult(success=False, handled=False, message=BASIC_RETIRED)
        user = auth_data.login.decode("utf-8", "replace")
        expected = knobs.password_of(user)
        given = Secret(auth_data.password.decode("utf-8", "replace"))
        if expected is None or expected != given:
            return self._refused(server, mechanism)
        return self._accepted(server, mechanism, user)

    # -- hooks ----------------------------------------------------------------------------

    async def handle_EHLO(
        self,
        server: SubmissionSMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        offered = " ".join(server.replies.mechanisms)
        return [f"250-AUTH {offered}" if r.startswith("250-AUTH ") else r for r in responses]

    async def handle_AUTH(
        self, server: SubmissionSMTP, session: Session, envelope: Envelope, args: list[str]
    ) -> Any:
        if args[0].upper() not in server.replies.mechanisms:
            self.stats.auth(args[0].upper(), "not_offered")
            return UNRECOGNIZED_MECHANISM
        return MISSING

    async def handle_RCPT(
        self,
        server: SubmissionSMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if server.knobs.rejects(address):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(
        self, server: SubmissionSMTP, session: Session, envelope: Envelope
    ) -> str:
        identity: object = session.auth_data
        if not isinstance(identity, Identity):  # unreachable: MAIL needs AUTH first
            return NOT_AUTHENTICATED
        content = envelope.original_content or b""
        envelope_json: dict[str, object] = {
            "mail_from": envelope.mail_from,
            "mail_options": list(envelope.mail_options),
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": identity.user,
            "mechanism": identity.mechanism,
            "listener": server.listener.value,
            "size": len(content),
        }
        number = self.messages.save(content, envelope_json)
        self.stats.count("messages_received")
        return f"250 2.0.0 OK queued as {number:06d}"

    # -- outcomes -------------------------------------------------------------------------

    async def _bearer(
        self, server: SubmissionSMTP, mechanism: str, parsed: tuple[str | None, Secret] | None
    ) -> AuthResult:
        account = None
        if parsed is not None:
            user, token = parsed
            try:
                account = await self._account_of(server.knobs, user, token)
            except (TransportError, RemoteProtocolError):
                self.stats.auth(mechanism, "unavailable")
                return AuthResult(success=False, handled=False, message=TEMPORARY_FAILURE)
        if account is None:
            if server.replies.error_challenge:
                error = GOOGLE_XOAUTH2_ERROR if mechanism == "XOAUTH2" else OAUTHBEARER_ERROR
                # The client answers with an empty line (XOAUTH2) or %x01 (OAUTHBEARER), or
                # cancels with "*", which aiosmtpd has already answered with 501.
                if await server.challenge_auth(error) is MISSING:
                    self.stats.auth(mechanism, "aborted")
                    return AuthResult(success=False, handled=True)
            return self._refused(server, mechanism)
        return self._accepted(server, mechanism, account)

    async def _account_of(self, knobs: SmtpKnobs, user: str | None, token: Secret) -> str | None:
        """The account `token` authenticates as `user` (any account when `user` is None)."""
        static = knobs.account_of_static_token(token)
        if static is not None:
            account: str | None = static
        else:
            account = await introspect_username(self.authserver, token, http=self.http)
        if account is None or (user is not None and user.casefold() != account.casefold()):
            return None
        return user or account

    def _accepted(self, server: SubmissionSMTP, mechanism: str, user: str) -> AuthResult:
        block = server.knobs.blocked(user)
        if block is not None:
            self.stats.auth(mechanism, "policy")
            reply = block_reply(block)
            return AuthResult(success=False, handled=False, message=reply)
        self.stats.auth(mechanism, "success")
        return AuthResult(
            success=True, auth_data=Identity(user, mechanism), message=server.replies.success
        )

    def _refused(self, server: SubmissionSMTP, mechanism: str) -> AuthResult:
        self.stats.auth(mechanism, "failure")
        return AuthResult(success=False, handled=False, message=server.replies.failure_reply())


class SubmissionSMTP(SMTP):
    """One connection: aiosmtpd's SMTP with room for real tokens and this connection's knobs."""

    line_length_limit = STREAM_LINE_LIMIT  # read by SMTP.__init__ for the stream's limit

    def __init__(
        self, handler: SubmissionHandler, knobs: SmtpKnobs, listener: Listener, **kwargs: Any
    ) -> None:
        self.handler = handler
        self.knobs = knobs
        self.listener = listener
        self.replies = REPLIES[knobs.style]
        if knobs.size_limit is not None:
            kwargs["data_size_limit"] = knobs.size_limit  # 0: no SIZE extension
        super().__init__(
            handler,
            hostname=HOSTNAME,
            ident=greeting_ident(knobs.style),
            authenticator=handler.authenticate_password,
            **kwargs,
        )
        # SMTP.__init__ clears the class-level limits, so they are set per instance here.
        self.command_size_limits = collections.defaultdict(
            lambda: self.command_size_limit, AUTH=AUTH_LINE_LIMIT
        )

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg: str) -> None:
        """RFC 4954 §4: mechanism names are case-insensitive (aiosmtpd matches them exactly)."""
        mechanism, space, rest = (arg or "").partition(" ")
        await super().smtp_AUTH(mechanism.upper() + space + rest if arg else arg)

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        """Counted, refused or not: a test sees whether a client offered a message at all."""
        self.handler.stats.count("mail_commands")
        await super().smtp_MAIL(arg)

    async def check_auth_needed(self, caller_method: str) -> bool:
        """Submission: MAIL, RCPT and DATA only after AUTH (Exchange's reply)."""
        if self.session is not None and self.session.authenticated:
            return False
        await self.push(NOT_AUTHENTICATED)
        return True

    async def smtp_DATA(self, arg: str) -> None:
        """With `drop_after_data_bytes`, read that much of the message, then hang up."""
        limit = self.knobs.drop_after_data_bytes
        ready = self.session is not None and self.session.authenticated
        if limit is None or arg or not ready or not (self.envelope and self.envelope.rcpt_tos):
            await super().smtp_DATA(arg)
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        received, tail = 0, b"\r\n"
        # Stop early at the end-of-data line too: the reply is what is withheld then.
        while received < limit and not tail.endswith(b"\r\n.\r\n"):
            chunk = await self._reader.read(min(65536, limit - received))
            if not chunk:
                break
            received += len(chunk)
            tail = (tail + chunk)[-5:]
        self.handler.stats.count("messages_dropped")
        # As QUIT does: end this connection's command loop, then close.
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        if self.transport is not None:
            self.transport.close()


class _Refusal(asyncio.Protocol):
    """Greets with 421 and hangs up: the connection's knobs file is broken."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        line = f"421 4.3.0 {HOSTNAME} sandbox knobs invalid: {self._reason}"
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(line.encode("ascii", "replace")[:500] + b"\r\n")
        transport.close()


async def serve(
    directory: Path, authserver: AuthserverReady, tls: TlsFiles, stop: asyncio.Event
) -> None:
    """Listen on both ports, write DIR/ready.json, and serve until `stop` is set."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    loop = asyncio.get_running_loop()
    async with introspection_client(authserver) as http:
        handler = SubmissionHandler(directory, authserver, http)
        loop.add_signal_handler(signal.SIGUSR1, handler.stats.reset)

        def factory(listener: Listener) -> asyncio.Protocol:
            handler.stats.count("connections")
            try:
                knobs = load_knobs(directory / KNOBS_FILE)
            except ValidationError as exc:
                return _Refusal(str(exc))
            if listener is Listener.STARTTLS:
                return SubmissionSMTP(handler, knobs, listener, tls_context=context, loop=loop)
            # Implicit TLS: the transport is encrypted before the first byte, so AUTH is fine.
            return SubmissionSMTP(handler, knobs, listener, auth_require_tls=False, loop=loop)

        plain = await loop.create_server(lambda: factory(Listener.STARTTLS), HOST, 0)
        implicit = await loop.create_server(lambda: factory(Listener.TLS), HOST, 0, ssl=context)
        try:
            ready = {
                "host": HOST,
                "starttls_port": plain.sockets[0].getsockname()[1],
                "tls_port": implicit.sockets[0].getsockname()[1],
                "ca_file": str(tls.ca_file.resolve()),
                "pid": os.getpid(),
            }
            write_json_atomically(directory / READY_FILE, ready)
            await stop.wait()
        finally:
            # No wait_closed(): it would wait for clients that keep a connection open.
            plain.close()
            implicit.close()


def run_smtpserver(directory: Path, authserver_dir: Path) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit status."""
    # aiosmtpd logs every session at INFO and a deprecation notice on every AUTH success.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / READY_FILE).unlink(missing_ok=True)
    authserver = AuthserverReady.load(authserver_dir)
    # One CA for the whole sandbox: the authorization server's certificate covers 127.0.0.1.
    tls = TlsFiles.in_directory(authserver_dir)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(directory, authserver, tls, stop)

    asyncio.run(main())
    return 0


async def _initial_response(server: SubmissionSMTP, args: list[str]) -> bytes | None:
    """The SASL initial response (RFC 4954 §4), inline or after an empty ``334 ``.

    None when the client cancelled or sent bad base64 (the reply is already sent).
    """
    if len(args) == 1:
        blob = await server.challenge_auth(b"")
        return None if blob is MISSING else blob
    if args[1] == "=":
        return b""
    try:
        return base64.b64decode(args[1], validate=True)
    except binascii.Error:
        await server.push("501 5.5.2 Can't decode base64")
        return None
