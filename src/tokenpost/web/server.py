"""Serving the web page under uvicorn on the running event loop, beside the daemon.

`Listen.parse` reads ``--listen HOST:PORT``; `start` binds the socket first (so a port in use is
reported at once, with the fix) and serves on it in a task. uvicorn's own signal handling is off:
`serve` handles SIGTERM and SIGINT and calls `WebServer.stop`.

Session cookies are Secure: a browser keeps them over HTTPS, and over plain HTTP only on loopback.
So the page serves plain HTTP on loopback addresses only; any other address needs
``--tls-cert``/``--tls-key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import uvicorn
from fastapi import FastAPI

from tokenpost.errors import OperationError, UsageError

log = logging.getLogger("tokenpost.web")

DEFAULT_LISTEN: Final = "127.0.0.1:8025"
SHUTDOWN_GRACE_S: Final = 5


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Listen:
        """``HOST:PORT``, ``[IPv6]:PORT`` (port 0: any free port). Raises UsageError naming the
        form."""
        host, sep, port = text.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise UsageError(
                "--listen {value!r}: give HOST:PORT, e.g. 127.0.0.1:8025 or [::1]:8025",
                value=text,
            )
        return cls(host, int(port))

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def url(self, https: bool, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if https else 'http'}://{host}:{port or self.port}/"


def check_plain_http(listen: Listen, tls: bool) -> None:
    """Refuse plain HTTP on an address other than loopback (exit 2, naming the fix)."""
    if not tls and not listen.is_loopback:
        raise UsageError(
            "--listen {host}: plain HTTP is served on loopback only (the session cookie is "
            "Secure); give --tls-cert and --tls-key for HTTPS, or listen on 127.0.0.1",
            host=listen.host,
        )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the process's owner handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class WebServer:
    server: uvicorn.Server
    task: asyncio.Task[None]
    url: str

    async def stop(self) -> None:
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=SHUTDOWN_GRACE_S + 5)
        except TimeoutError:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def start(
    api: FastAPI, listen: Listen, *, tls_cert: str | None = None, tls_key: str | None = None
) -> WebServer:
    """Bind and serve `api` in a task on the running loop.

    Raises:
        UsageError: plain HTTP on a non-loopback address; only one of --tls-cert/--tls-key; a
            certificate or key that cannot be used.
        OperationError: the address cannot be bound (in use, not this host's).
    """
    https = tls_cert is not None or tls_key is not None
    if https and (tls_cert is None or tls_key is None):
        raise UsageError("give both --tls-cert and --tls-key for HTTPS")
    check_plain_http(listen, https)
    config = uvicorn.Config(
        api,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_config=None,
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    try:
        config.load()
    except (OSError, ssl.SSLError) as error:
        raise UsageError(
            "--tls-cert/--tls-key cannot be used ({reason}): give a PEM certificate chain and "
            "its private key",
            reason=getattr(error, "strerror", None) or type(error).__name__,
        ) from None
    if config.ssl is not None:
        config.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    sock = _bind(listen)
    port = sock.getsockname()[1]
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="web")
    # uvicorn offers no event for "started": its flag is polled (for a few milliseconds).
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    if task.done():
        sock.close()
        task.result()  # its error, if it had one
        raise OperationError("the web page stopped as it started")
    return WebServer(server, task, listen.url(https, port))


def _bind(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    host = "127.0.0.1" if listen.host == "localhost" else listen.host
    try:
        sock = socket.create_server((host, listen.port), family=family, reuse_port=False)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise OperationError(
                "port {port} on {host} is in use by another program: stop it, or give "
                "serve another --listen HOST:PORT",
                port=listen.port,
                host=listen.host,
            ) from None
        raise OperationError(
            "cannot listen on {host}:{port} ({reason}): give serve --listen with an address "
            "of this host",
            host=listen.host,
            port=listen.port,
            reason=error.strerror or str(error),
        ) from None
    # socket.create_server leaves the protocol 0, so asyncio does not set TCP_NODELAY on the
    # connections it accepts: every keep-alive answer would wait for the client's delayed ACK.
    # Set on the listening socket, the option is inherited by the accepted ones (Linux, BSD).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock
