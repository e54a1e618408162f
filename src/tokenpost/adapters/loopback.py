"""The loopback redirect listener for the authorization-code flow (RFC 8252 §7.3, §8.3).

A minimal HTTP/1.1 server on asyncio streams, open only while one authorization is pending. It
listens where the registered redirect URI points (`oauth.redirect_uri`): ``127.0.0.1`` or ``::1``
for those literals, and both on the same port for ``localhost`` (browsers try ``::1`` first;
without IPv6 on this host, IPv4 alone). The port is the registered one, else a free one, chosen so
that it is free on both addresses: no other program may answer on either.

The first GET to the registered path hands its raw query string (the code and state, RFC 6749
§4.1.2) to `wait_for_redirect()`; the browser gets a small page saying it can close the window.
Other paths answer 404, repeats of the redirect 410, other methods 405, malformed or oversized
requests (over 8 KiB of head) 400. Each connection answers one request and closes.

The query holds the authorization code and state: it is never logged, and the pages never echo it.
The Host header must name the registered host and the port, so a page on a rebinding DNS name
cannot deliver a redirect (its Host is its own name). The path is the administrator's, the same
for every provider: a redirect from the wrong provider (mix-up, RFC 9700 §4.4) can no longer be
told by its path, and is refused by its `state` and `iss` instead (`oauth.authcode`).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from contextlib import suppress
from dataclasses import dataclass
from typing import Final

from tokenpost.errors import AuthorizationEndedError, OperationError
from tokenpost.oauth.redirect_uri import LoopbackRedirect, same_authority, same_path

MAX_HEAD_BYTES: Final = 8 * 1024
# A browser sends its request at once; a connection idle this long is closed.
HEAD_TIMEOUT_S: Final = 10.0
# After a 400 the rest of an oversized request is read and dropped (bounded), so that closing
# does not reset the connection before the client has read the answer.
_DRAIN_BYTES: Final = 64 * 1024
_DRAIN_TIMEOUT_S: Final = 1.0
# A free port on 127.0.0.1 may be taken on ::1 by another program: try other ports this often.
_FREE_PORT_ATTEMPTS: Final = 20
# The address does not exist here: `localhost` then listens on 127.0.0.1 alone.
_NO_SUCH_ADDRESS: Final = frozenset({errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT})
_BACKLOG: Final = 16

_PAGE: Final = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>tokenpost</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; margin: 3em auto; max-width: 36em">
<h1>tokenpost: you can close this window</h1>
<p>The authorization has been handed to tokenpost.</p>
<h1 lang="de">tokenpost: Sie k&ouml;nnen dieses Fenster schlie&szlig;en</h1>
<p lang="de">Die Autorisierung wurde an tokenpost &uuml;bergeben.</p>
</body>
</html>
"""

_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
}


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    query: str
    host: str


class LoopbackListener:
    """`ports.RedirectListener` on the registered loopback host; build it with
    `open_redirect_listener`."""

    def __init__(self, servers: list[asyncio.Server], redirect_uri: str) -> None:
        self._servers = servers
        self._redirect_uri = redirect_uri
        self._requests = 0
        loop = asyncio.get_running_loop()
        self._redirect: asyncio.Future[str] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def redirect_uri(self) -> str:
        """The registered redirect URI with the listener's port, to send as `redirect_uri`."""
        return self._redirect_uri

    @property
    def requests(self) -> int:
        """How many requests have reached the listener (any path, any answer)."""
        return self._requests

    @property
    def addresses(self) -> tuple[tuple[int, str], ...]:
        """(address family, IP address) of every socket listened on, for the tests."""
        return tuple(
            (sock.family, sock.getsockname()[0])
            for server in self._servers
            for sock in server.sockets
        )

    async def wait_for_redirect(self) -> str:
        """The raw query string of the first GET to the redirect path.

        Creates no task: a caller's timeout or cancellation leaves the listener as it was, and a
        later call can still receive the redirect.

        Raises:
            AuthorizationEndedError: the listener was closed before the redirect arrived.
        """
        if not self._redirect.done():
            await asyncio.wait((self._redirect, self._closed), return_when=asyncio.FIRST_COMPLETED)
        if self._redirect.done():
            return self._redirect.result()
        raise AuthorizationEndedError(
            "the redirect listener was closed before the browser returned; start again with "
            "tokenpost token get and finish the sign-in in the browser"
        )

    async def close(self) -> None:
        """Stop listening and end open connections. Idempotent."""
        if self._closed.done():
            return
        self._closed.set_result(None)
        for server in self._servers:
            server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """One request and one answer per connection (the stream server's callback)."""
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            if not self._closed.done():
                await self._answer(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the browser went away or sent nothing: nothing to answer
        finally:
            try:
                writer.close()
                with suppress(ConnectionError):
                    await writer.wait_closed()
            finally:
                # Listed until done, so that close() waits for (or cancels) this task.
                if task is not None:
                    self._connections.discard(task)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            self._requests += 1
            await _reply(writer, _response(400, b"request head too large\n"))
            if writer.can_write_eof():
                writer.write_eof()  # the client sees the end of the answer while we drain
            await _drain(reader)
            return
        self._requests += 1
        request = _parse_head(head)
        await _reply(writer, self._route(request))

    def _route(self, request: _Request | None) -> bytes:
        if request is None or not same_authority(self._redirect_uri, request.host):
            return _response(400, b"bad request\n")
        if request.method != "GET":
            return _response(405, b"only GET is served here\n", allow=True)
        if not same_path(self._redirect_uri, request.path):
            return _response(404, b"not found\n")
        if self._redirect.done():
            return _response(410, b"this authorization redirect was already received\n")
        self._redirect.set_result(request.query)
        return _response(200, _PAGE, html=True)


async def open_redirect_listener(redirect: LoopbackRedirect) -> LoopbackListener:
    """Listen for the redirect to `redirect`: on each of its addresses, on its port or else on
    one port free on all of them.

    Matches `ports.RedirectListenerFactory`. The caller closes the listener when the
    authorization ends (RFC 8252 §8.3: the port is open only for the authorization).

    Raises:
        OperationError: the registered port is taken, or the address does not exist here.
    """
    listener: LoopbackListener | None = None

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if listener is None:  # pragma: no cover - the servers start before any connection runs
            writer.close()
            return
        await listener._serve_connection(reader, writer)

    sockets = _bind(redirect)
    servers: list[asyncio.Server] = []
    try:
        for sock in sockets:
            servers.append(
                await asyncio.start_server(on_connection, sock=sock, limit=MAX_HEAD_BYTES)
            )
    except BaseException:
        for server in servers:
            server.close()
        for sock in sockets:
            sock.close()
        raise
    port = int(sockets[0].getsockname()[1])
    listener = LoopbackListener(servers, redirect.with_port(port))
    return listener


def _bind(redirect: LoopbackRedirect) -> list[socket.socket]:
    """Listening sockets on every address of `redirect` that exists here, all on one port."""
    if redirect.port is not None:
        return _bind_all(redirect.addresses, redirect.port)
    for _ in range(_FREE_PORT_ATTEMPTS - 1):
        try:
            return _bind_all(redirect.addresses, 0)
        except OperationError as error:
            if not isinstance(error.__cause__, OSError) or (
                error.__cause__.errno != errno.EADDRINUSE
            ):
                raise
    return _bind_all(redirect.addresses, 0)


def _bind_all(addresses: tuple[str, ...], port: int) -> list[socket.socket]:
    """Sockets on `addresses` (the first one required, later ones where they exist), all on
    `port`, or on the port the first one got when `port` is 0."""
    bound: list[socket.socket] = []
    try:
        for address in addresses:
            try:
                sock = _listening_socket(address, port)
            except OSError as error:
                if bound and error.errno in _NO_SUCH_ADDRESS:
                    continue  # `localhost` without IPv6 on this host
                raise _bind_error(address, port, error) from error
            bound.append(sock)
            port = int(sock.getsockname()[1])
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound


def _listening_socket(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name == "posix":
            # Lets a fixed port be used again while the last run's connections are in
            # TIME_WAIT; on POSIX it never lets two sockets listen on one address and port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_error(address: str, port: int, error: OSError) -> OperationError:
    if error.errno == errno.EADDRINUSE and port:
        return OperationError(
            "the redirect listener cannot use port {port} on {address}: another program listens"
            " there; end it, or register the redirect URI without a port (a free one is then"
            " chosen at each start) and set it with tokenpost provider add … --redirect-uri",
            port=port,
            address=address,
        )
    if error.errno in _NO_SUCH_ADDRESS:
        return OperationError(
            "the redirect listener cannot listen on {address}: this host has no such loopback"
            " address; register http://127.0.0.1 or http://localhost at the provider and set it"
            " with tokenpost provider add … --redirect-uri",
            address=address,
        )
    return OperationError(
        "the redirect listener cannot listen on {address} port {port}: {reason}",
        address=address,
        port=port,
        reason=error.strerror or str(error.errno),
    )


def _parse_head(head: bytes) -> _Request | None:
    """Request line and Host of an HTTP/1.1 request head (RFC 9112 §3), or None if malformed."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return None
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return None
    method, target, _version = parts
    hosts = [
        value.strip()
        for name, sep, value in (line.partition(":") for line in header_lines if line)
        if sep and name.strip().lower() == "host"
    ]
    if len(hosts) != 1:
        return None
    path, _, query = target.partition("?")
    return _Request(method=method, path=path, query=query, host=hosts[0].lower())


def _response(status: int, body: bytes, *, html: bool = False, allow: bool = False) -> bytes:
    content_type = "text/html; charset=utf-8" if html else "text/plain; charset=utf-8"
    lines = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "Referrer-Policy: no-referrer",
        "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'",
        "X-Content-Type-Options: nosniff",
        "Connection: close",
    ]
    if allow:
        lines.append("Allow: GET")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


async def _reply(writer: asyncio.StreamWriter, response: bytes) -> None:
    writer.write(response)
    await writer.drain()


async def _drain(reader: asyncio.StreamReader) -> None:
    """Read and drop what is left of a refused request, within bounds of size and time."""
    with suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_TIMEOUT_S):
            remaining = _DRAIN_BYTES
            while remaining > 0 and (chunk := await reader.read(min(remaining, 4096))):
                remaining -= len(chunk)
