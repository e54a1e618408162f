"""A small HTTP CONNECT proxy (RFC 9110 §9.3.6) of our own on 127.0.0.1, for proxy tests.

It counts the tunnels it opened and records each CONNECT target and Proxy-Authorization header.
Knobs: `hosts` maps a CONNECT host to the address actually dialled (a name that resolves nowhere
becomes reachable only through the proxy, as with a real proxy that resolves names itself);
`refuse` answers every CONNECT with that status; `credentials` demands Basic proxy
authentication (407 otherwise); `tls` makes it an https:// proxy.

    async with ConnectProxy(hosts={"sandbox.tokenpost.test": "127.0.0.1"}) as proxy:
        ...proxy.url, proxy.tunnels

    with threaded(ConnectProxy()) as proxy:      # for tests that run the CLI as a subprocess
        ...
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

HEAD_LIMIT = 64 * 1024


@dataclass
class ConnectProxy:
    hosts: Mapping[str, str] = field(default_factory=dict)
    refuse: int | None = None
    credentials: tuple[str, str] | None = None
    tls: ssl.SSLContext | None = None
    tunnels: int = 0  # CONNECTs answered 200, each a tunnel to the target
    targets: list[str] = field(default_factory=list)  # every CONNECT's host:port
    authorizations: list[str | None] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    _port: int = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await self._tunnel(reader, writer)
        except (
            ConnectionError,
            ssl.SSLError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
        ):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            self._writers.discard(writer)
            self._tasks.discard(task)

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n"))[:HEAD_LIMIT].decode("latin-1")
        request_line, *lines = head.split("\r\n")
        method, target, _version = request_line.split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
        self.targets.append(target)
        self.authorizations.append(headers.get("proxy-authorization"))
        if method != "CONNECT":
            await _answer(writer, "405 Method Not Allowed")
            return
        if self.refuse is not None:
            await _answer(writer, f"{self.refuse} Refused By Test Proxy")
            return
        if self.credentials is not None and headers.get("proxy-authorization") != _basic(
            *self.credentials
        ):
            await _answer(
                writer,
                "407 Proxy Authentication Required",
                'Proxy-Authenticate: Basic realm="test"\r\n',
            )
            return
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.hosts.get(host, host), int(port)
            )
        except OSError:
            await _answer(writer, "502 Bad Gateway")
            return
        self._writers.add(upstream_writer)
        self.tunnels += 1
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await upstream_writer.wait_closed()
            self._writers.discard(upstream_writer)


async def _answer(writer: asyncio.StreamWriter, status: str, extra: str = "") -> None:
    writer.write(f"HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\n\r\n".encode("latin-1"))
    await writer.drain()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


@contextlib.contextmanager
def threaded(proxy: ConnectProxy, *, timeout: float = 30.0) -> Iterator[ConnectProxy]:
    """Run `proxy` on an event loop of its own thread, for tests that are not async."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = threading.Event()

    def run() -> None:
        async def main() -> None:
            await proxy.start()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)
            await proxy.stop()

        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, name="test-connect-proxy", daemon=True)
    thread.start()
    if not ready.wait(timeout):
        raise RuntimeError("the test proxy did not start")
    try:
        yield proxy
    finally:
        stop.set()
        thread.join(timeout)
