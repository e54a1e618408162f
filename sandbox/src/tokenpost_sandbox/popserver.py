"""The sandbox POP3 server: a Maildir served over POP3 with STLS and over POP3S (asyncio).

Built on tokenpost's own server core (`pop3.server`); tokenpost's client is tested against it
and against Dovecot, so a shared misreading of the RFCs would show up there.

- Maildrop: the files in MAILDIR/new and MAILDIR/cur, numbered by name at login; the UIDL is the
  file name without its `:2,…` info; DELE marks, QUIT (UPDATE state) removes the files. One
  session at a time holds the maildrop (`-ERR [IN-USE]` for the next).
- Authentication: SASL XOAUTH2 and OAUTHBEARER (two-line and inline), checked by an injected
  `check_token(user, token)`; USER/PASS, SASL PLAIN and APOP against configured passwords.
- Knobs: DIR/knobs.json, read for every connection (see `popknobs`): the style (standard /
  Exchange Online / Gmail replies), passwords, static tokens, and faults for tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import os
import secrets
import signal
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tokenpost.errors import TokenpostError
from tokenpost.pop3.events import NEED_DATA, ConnectionClosed
from tokenpost.pop3.server import AuthResponse, Command, Pop3Server, Rejected, ServerState
from tokenpost.secret import Secret
from tokenpost_sandbox.certs import TlsFiles, write_tls_files
from tokenpost_sandbox.introspect import AuthserverReady
from tokenpost_sandbox.introspect import check_token as introspection_check
from tokenpost_sandbox.popknobs import KNOBS_FILE, PROFILES, PopKnobs
from tokenpost_sandbox.smtpsasl import parse_oauthbearer, parse_xoauth2

CheckToken = Callable[[str, Secret], Awaitable[bool]]
HOST: Final = "127.0.0.1"
_CHUNK: Final = 64 * 1024
_IDLE_TIMEOUT: Final = 600.0  # RFC 1939 §3: an autologout timer of at least 10 minutes


@dataclass(frozen=True, slots=True)
class _Message:
    path: Path
    uid: str
    size: int  # octets as sent: CRLF line ends, before dot-stuffing (RFC 1939 §5 LIST)


def _scan(maildir: Path) -> list[_Message]:
    paths = sorted(
        (p for sub in ("new", "cur") for p in (maildir / sub).iterdir() if p.is_file()),
        key=lambda p: p.name,
    )
    messages = []
    for path in paths:
        data = path.read_bytes()
        size = len(data) + data.count(b"\n") - data.count(b"\r\n")
        messages.append(_Message(path, path.name.split(":", 1)[0], size))
    return messages


class PopServer:
    """Listens on a plain/STLS port and (with TLS files) a POP3S port on 127.0.0.1."""

    def __init__(
        self,
        maildir: Path,
        *,
        knobs: Callable[[], PopKnobs] = PopKnobs,
        check_token: CheckToken | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.maildir = maildir
        self.knobs = knobs
        self.check_token = check_token
        self.context = _server_context(tls) if tls is not None else None
        self.locked = False
        self._servers: list[asyncio.Server] = []
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)

    async def start(self, port: int = 0, tls_port: int = 0) -> tuple[int, int | None]:
        """Start listening; returns (plain/STLS port, POP3S port or None without TLS)."""
        plain = await asyncio.start_server(self._plain, HOST, port)
        self._servers.append(plain)
        ports: tuple[int, int | None] = (plain.sockets[0].getsockname()[1], None)
        if self.context is not None:
            implicit = await asyncio.start_server(self._implicit, HOST, tls_port, ssl=self.context)
            self._servers.append(implicit)
            ports = (ports[0], implicit.sockets[0].getsockname()[1])
        return ports

    async def close(self) -> None:
        """Stop listening and end every connection (as a dropped connection: no UPDATE)."""
        for server in self._servers:
            server.close()
        for writer in self._connections.values():
            writer.transport.abort()  # the session's next read sees the end and returns
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    async def _plain(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, tls=False)

    async def _implicit(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._serve(reader, writer, tls=True)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections[task] = writer
        session: _Session | None = None
        try:
            session = _Session(self, reader, writer, tls=tls)
            await session.run()
        except (OSError, TimeoutError):
            pass  # the client went away (or a knob dropped it): nothing was committed
        finally:
            if task is not None:
                self._connections.pop(task, None)
            if session is not None:
                session.release()
            await _close(writer, clean=session is not None and session.done)


class _Session:
    """One connection: the core's commands, answered from the maildrop and the knobs."""

    def __init__(
        self,
        server: PopServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tls: bool,
    ) -> None:
        self.server, self.reader, self.writer, self.tls = server, reader, writer, tls
        self.knobs = server.knobs()
        self.profile = PROFILES[self.knobs.style]
        self.core = Pop3Server()
        self.timestamp = f"<{os.getpid()}.{secrets.token_hex(4)}@sandbox.test>"
        self.messages: list[_Message] = []
        self.deleted: set[int] = set()
        self.holds_lock = False
        self.sasl: tuple[str, bool] | None = None  # (mechanism, error challenge sent)
        self.user = ""

    @property
    def done(self) -> bool:
        """QUIT was answered."""
        return self.core.state is ServerState.CLOSED

    async def run(self) -> None:
        await self.send(Pop3Server.greeting(self._greeting()))
        while self.core.state is not ServerState.CLOSED:
            event = self.core.next_event()
            if event is NEED_DATA:
                async with asyncio.timeout(_IDLE_TIMEOUT):
                    data = await self.reader.read(_CHUNK)
                self.core.receive_data(data)
            elif isinstance(event, ConnectionClosed):
                return
            elif isinstance(event, Rejected):
                await self.send(self.core.err(event.reason))
            elif isinstance(event, AuthResponse):
                await self.on_auth_response(event.response)
            else:
                await self.on_command(event)

    def release(self) -> None:
        if self.holds_lock:
            self.server.locked = self.holds_lock = False

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def _greeting(self) -> str:
        if self.knobs.oversized == "greeting":
            return "x" * 600
        return self.profile.greeting.format(timestamp=self.timestamp)

    async def on_command(self, command: Command) -> None:
        handler = getattr(self, "do_" + command.verb.lower())
        await handler(*command.args)

    # --- AUTHORIZATION ---------------------------------------------------------------------

    async def do_capa(self) -> None:
        await self.send(self.core.ok("Capability list follows"))
        for line in self._capabilities():
            await self.send(self.core.data(line.encode() + b"\r\n"))
        await self.send(self.core.end())

    def _capabilities(self) -> list[str]:
        stls = self._stls_available() and self.core.state is ServerState.AUTHORIZATION
        return [*self.profile.capabilities, *(["STLS"] if stls else [])]

    def _stls_available(self) -> bool:
        return self.knobs.stls and not self.tls and self.server.context is not None

    async def do_stls(self) -> None:
        context = self.server.context
        if not self._stls_available() or context is None:
            await self.send(self.core.err("STLS not available"))
            return
        await self.send(self.core.ok("Begin TLS negotiation now"))
        await self.writer.start_tls(context)
        self.tls = True

    async def do_user(self, user: str) -> None:
        self.user = user
        await self.send(self.core.ok())

    async def do_pass(self, password: str) -> None:
        expected = self.knobs.password_of(self.user)
        await self.finish_auth(
            self.user, good=expected is not None and expected == Secret(password)
        )

    async def do_apop(self, user: str, digest: str) -> None:
        if "{timestamp}" not in self.profile.greeting:
            await self.send(self.core.err("APOP is not offered"))
            return
        expected = self.knobs.password_of(user)
        data = self.timestamp.encode() + (expected.reveal().encode() if expected else b"")
        good = hashlib.md5(data, usedforsecurity=False).hexdigest()
        matches = expected is not None and secrets.compare_digest(good, digest)
        await self.finish_auth(user, good=matches)

    async def do_auth(self, mechanism: str, initial: str | None = None) -> None:
        mechanism = mechanism.upper()
        if mechanism not in self.profile.mechanisms:
            await self.send(self.core.err("Unsupported authentication mechanism"))
            return
        self.sasl = (mechanism, False)
        if initial is None:
            await self.send(self.core.challenge(""))
        elif not self.profile.inline_response:
            await self.finish_auth("", good=False)
        else:
            await self.on_auth_response(initial)

    async def on_auth_response(self, response: str) -> None:
        mechanism, error_sent = self.sasl or ("", True)
        if error_sent or response == "*":
            await self.finish_auth("", good=False)
            return
        try:
            blob = base64.b64decode(response, validate=True) if response != "=" else b""
        except binascii.Error:
            await self.finish_auth("", good=False)
            return
        user, good = await self._check_blob(mechanism, blob)
        if not good and mechanism != "PLAIN" and self.profile.error_challenge:
            self.sasl = (mechanism, True)
            await self.send(self.core.challenge(self.profile.challenge_for(mechanism)))
            return
        await self.finish_auth(user, good=good)

    async def _check_blob(self, mechanism: str, blob: bytes) -> tuple[str, bool]:
        if mechanism == "PLAIN":
            parts = blob.split(b"\0")
            if len(parts) != 3:
                return "", False
            user, password = parts[1].decode(errors="replace"), parts[2].decode(errors="replace")
            expected = self.knobs.password_of(user)
            return user, expected is not None and expected == Secret(password)
        parsed = parse_xoauth2(blob) if mechanism == "XOAUTH2" else parse_oauthbearer(blob)
        if parsed is None or not parsed[0]:
            return "", False
        user, token = parsed[0], parsed[1]
        return user, await self._token_ok(user, token)

    async def _token_ok(self, user: str, token: Secret) -> bool:
        if self.knobs.static_token_of(user) == token:
            return True
        if self.server.check_token is None:
            return False
        try:
            return await self.server.check_token(user, token)
        except TokenpostError:
            return False

    async def finish_auth(self, user: str, *, good: bool) -> None:
        self.sasl = None
        if not good:
            profile = self.profile
            await self.send(self.core.err(profile.failure, code=profile.failure_code))
            return
        if self.server.locked:
            await self.send(self.core.err("Mailbox is locked by another session", code="IN-USE"))
            return
        self.server.locked = self.holds_lock = True
        self.messages = _scan(self.server.maildir)
        await self.send(self.core.ok(self.profile.success.format(user=user)))

    # --- TRANSACTION and UPDATE ------------------------------------------------------------

    def _message(self, number: str) -> _Message | None:
        index = int(number)
        if index > len(self.messages) or index in self.deleted:
            return None
        return self.messages[index - 1]

    def _live(self) -> list[tuple[int, _Message]]:
        return [(n, m) for n, m in enumerate(self.messages, 1) if n not in self.deleted]

    async def do_stat(self) -> None:
        live = self._live()
        await self.send(self.core.ok(f"{len(live)} {sum(m.size for _, m in live)}"))

    async def do_list(self, number: str | None = None) -> None:
        await self._listing(number, lambda n, m: f"{n} {m.size}")

    async def do_uidl(self, number: str | None = None) -> None:
        await self._listing(number, lambda n, m: f"{n} {m.uid}")

    async def _listing(self, number: str | None, line: Callable[[int, _Message], str]) -> None:
        if number is not None:
            message = self._message(number)
            if message is None:
                await self.send(self.core.err("No such message"))
            else:
                await self.send(self.core.ok(line(int(number), message)))
            return
        await self.send(self.core.ok())
        for n, message in self._live():
            await self.send(self.core.data(line(n, message).encode() + b"\r\n"))
        await self.send(self.core.end())

    async def do_retr(self, number: str) -> None:
        message = self._message(number)
        if message is None:
            await self.send(self.core.err("No such message"))
            return
        budget = self.knobs.drop_retr_after
        await self.send(self.core.ok(f"{message.size} octets"))
        if self.knobs.oversized == "retr":
            await self.send(self.core.data(b"x" * (70 * 1024)))
        with message.path.open("rb") as source:
            while chunk := source.read(_CHUNK):
                data = self.core.data(chunk)
                if budget is not None and len(data) >= budget:
                    await self.send(data[:budget])
                    raise ConnectionAbortedError("drop_retr_after")
                budget = None if budget is None else budget - len(data)
                await self.send(data)
        await self.send(self.core.end())

    async def do_dele(self, number: str) -> None:
        if self._message(number) is None:
            await self.send(self.core.err("No such message"))
            return
        self.deleted.add(int(number))
        await self.send(self.core.ok(f"message {number} deleted"))

    async def do_rset(self) -> None:
        self.deleted.clear()
        await self.send(self.core.ok())

    async def do_noop(self) -> None:
        await self.send(self.core.ok())

    async def do_quit(self) -> None:
        if self.core.state is ServerState.UPDATE:
            for number in sorted(self.deleted):
                self.messages[number - 1].path.unlink(missing_ok=True)
        self.release()
        await self.send(self.core.ok("Bye"))


async def _close(writer: asyncio.StreamWriter, *, clean: bool) -> None:
    """After QUIT, close gracefully (the reply must arrive); after a failure, abort."""
    if not clean:
        writer.transport.abort()
        return
    writer.close()
    try:
        async with asyncio.timeout(5):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        writer.transport.abort()


def _server_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_file, files.key_file)
    return context


def run_popserver(
    directory: Path,
    maildir: Path,
    authserver_dir: Path | None,
    *,
    port: int = 0,
    tls_port: int = 0,
) -> int:
    """Serve until SIGTERM or SIGINT, then return 0. Writes DIR/ready.json once listening::

        {"host": "127.0.0.1", "port": N, "tls_port": N, "ca_file": "...", "pid": N}

    `port` speaks POP3 with STLS, `tls_port` POP3S. With `authserver_dir`, bearer tokens are
    checked by introspection at that authorization server, whose certificate is reused;
    without it only knobs' `static_tokens` are accepted and own TLS files are written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ready = directory / "ready.json"
    ready.unlink(missing_ok=True)
    check_token: CheckToken | None = None
    if authserver_dir is None:
        tls = write_tls_files(directory)
    else:
        tls = TlsFiles.in_directory(authserver_dir)
        authserver = AuthserverReady.load(authserver_dir)

        async def introspected(user: str, token: Secret) -> bool:
            return await introspection_check(authserver, user, token)

        check_token = introspected

    async def main() -> None:
        server = PopServer(
            maildir,
            knobs=lambda: PopKnobs.load(directory / KNOBS_FILE),
            check_token=check_token,
            tls=tls,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        plain_port, implicit_port = await server.start(port, tls_port)
        content = {
            "host": HOST,
            "port": plain_port,
            "tls_port": implicit_port,
            "ca_file": str(tls.ca_file.resolve()),
            "pid": os.getpid(),
        }
        temporary = ready.with_name(".ready.json.tmp")
        temporary.write_text(json.dumps(content, indent=2), encoding="utf-8")
        os.replace(temporary, ready)
        await stop.wait()
        await server.close()

    asyncio.run(main())
    return 0
