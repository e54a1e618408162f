"""The loopback redirect listener for the authorization-code flow (RFC 8252 §7.3, §8.3).

A minimal HTTP/1.1 server on asyncio streams, bound to an IPv4 loopback address on a free port, and
open only while one authorization is pending. The first GET to the redirect path hands its raw
query string (the code and state, RFC 6749 §4.1.2) to `wait_for_redirect()`; the browser gets a
small page saying it can close the window. Other paths answer 404, repeats of the redirect 410,
other methods 405, malformed or oversized requests (over 8 KiB of head) 400. Each connection
answers one request and closes.

The query holds the authorization code and state: it is never logged, and the pages never echo it.
The Host header must name the listener itself, so a page on a rebinding DNS name cannot deliver a
redirect (its Host is its own name).
"""

from __future__ import annotations

import asyncio
import ipaddress
from contextlib import suppress
from dataclasses import dataclass
from typing import Final

from tokenpost.errors import AuthorizationEndedError, UsageError

MAX_HEAD_BYTES: Final = 8 * 1024
# A browser sends its request at once; a connection idle this long is closed.
HEAD_TIMEOUT_S: Final = 10.0
# After a 400 the rest of an oversized request is read and dropped (bounded), so that closing
# does not reset the connection before the client has read the answer.
_DRAIN_BYTES: Final = 64 * 1024
_DRAIN_TIMEOUT_S: Final = 1.0

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
    """`ports.RedirectListener` on 127.0.0.1; build it with `open_redirect_listener`."""

    def __init__(self, server: asyncio.Server, host: str, port: int, path: str) -> None:
        self._server = server
        self._path = path
        self._redirect_uri = f"http://{host}:{port}{path}"
        self._own_hosts = frozenset({f"{host}:{port}", f"localhost:{port}"})
        loop = asyncio.get_running_loop()
        self._redirect: asyncio.Future[str] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def redirect_uri(self) -> str:
        """`http://127.0.0.1:<port><path>`, to send as `redirect_uri` (RFC 8252 §7.3)."""
        return self._redirect_uri

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
        self._server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await self._server.wait_closed()

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
            await _reply(writer, _response(400, b"request head too large\n"))
            if writer.can_write_eof():
                writer.write_eof()  # the client sees the end of the answer while we drain
            await _drain(reader)
            return
        request = _parse_head(head)
        await _reply(writer, self._route(request))

    def _route(self, request: _Request | None) -> bytes:
        if request is None or request.host not in self._own_hosts:
            return _response(400, b"bad request\n")
        if request.method != "GET":
            return _response(405, b"only GET is served here\n", allow=True)
        if request.path != self._path:
            return _response(404, b"not found\n")
        if self._redirect.done():
            return _response(410, b"this authorization redirect was already received\n")
        self._redirect.set_result(request.query)
        return _response(200, _PAGE, html=True)


async def open_redirect_listener(
    path: str = "/callback", *, host: str = "127.0.0.1"
) -> LoopbackListener:
    """Listen on `host` (an IPv4 loopback address) at a free port for the redirect to `path`.

    Matches `ports.RedirectListenerFactory`. The caller closes the listener when the
    authorization ends (RFC 8252 §8.3: the port is open only for the authorization).

    Raises:
        UsageError: `host` is not an IPv4 loopback address or `path` is not an absolute path.
    """
    _check_host(host)
    _check_path(path)
    listener: LoopbackListener | None = None

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if listener is None:  # pragma: no cover - the server starts before any connection runs
            writer.close()
            return
        await listener._serve_connection(reader, writer)

    server = await asyncio.start_server(
        on_connection, host=host, port=0, limit=MAX_HEAD_BYTES, reuse_address=False
    )
    port = server.sockets[0].getsockname()[1]
    listener = LoopbackListener(server, host, port, path)
    return listener


def _check_host(host: str) -> None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if not isinstance(address, ipaddress.IPv4Address) or not address.is_loopback:
        raise UsageError("redirect listener host: must be an IPv4 loopback address (127.0.0.1)")


def _check_path(path: str) -> None:
    if not path.startswith("/") or any(c in path for c in "?# ") or not path.isprintable():
        raise UsageError("redirect path: must start with / and hold no query, fragment or space")


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
