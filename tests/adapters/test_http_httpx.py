"""The httpx adapter against a real HTTPS peer on 127.0.0.1 (trustme certificates)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote_plus, urlencode

import httpx
import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from tokenpost import __version__
from tokenpost.adapters.http_failures import exception_messages, mapped
from tokenpost.adapters.http_httpx import HttpxClient, _basic_credentials
from tokenpost.errors import (
    RemoteProtocolError,
    TlsVerifyError,
    TokenpostError,
    TransportError,
    UsageError,
)
from tokenpost.i18n import translator
from tokenpost.oauth.http import MAX_RESPONSE_BYTES, HttpRequest
from tokenpost.secret import Secret
from tokenpost.settings.network import Network

SECRET_VALUE = "rt-S3cr3t value&x=+/ü"

# --------------------------------------------------------------------------- a canned HTTPS peer


@dataclass(frozen=True, slots=True)
class Received:
    request_line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


Answer = Callable[[asyncio.StreamWriter, Received], Awaitable[None]]


@dataclass
class Peer:
    """A tiny HTTP/1.1 server: parses each request, lets `answer` write the response."""

    answer: Answer
    requests: list[Received] = field(default_factory=list)
    connections: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/token"

    async def start(self, ctx: ssl.SSLContext) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ctx)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        # Abort: a graceful TLS close would wait for a close_notify an idle client never sends.
        for writer in self.writers:
            writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.add(writer)
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                    return
                received = _parse(head)
                length = int(received.header("Content-Length") or 0)
                received = Received(
                    received.request_line, received.headers, await reader.readexactly(length)
                )
                self.requests.append(received)
                await self.answer(writer, received)
                if writer.is_closing():
                    return
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            self.tasks.discard(task)
            self.writers.discard(writer)


def _parse(head: bytes) -> Received:
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers = tuple(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in lines if line)
    )
    return Received(request_line, headers, b"")


def respond(
    status: int = 200,
    body: bytes = b'{"access_token": "x", "token_type": "Bearer"}',
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),),
) -> Answer:
    async def answer(writer: asyncio.StreamWriter, _: Received) -> None:
        lines = [f"HTTP/1.1 {status} Canned", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()

    return answer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def server_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
async def client() -> AsyncIterator[HttpxClient]:
    async with HttpxClient() as http:
        yield http


@pytest.fixture
async def start_peer(
    server_ctx: ssl.SSLContext,
) -> AsyncIterator[Callable[[Answer], Awaitable[Peer]]]:
    peers: list[Peer] = []

    async def start(answer: Answer) -> Peer:
        peer = Peer(answer)
        await peer.start(server_ctx)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        await peer.stop()


def token_request(url: str) -> HttpRequest:
    return HttpRequest(
        method="POST",
        url=url,
        form=(
            ("grant_type", "refresh_token"),
            ("refresh_token", Secret(SECRET_VALUE)),
            ("client_id", "tokenpost-test"),
        ),
    )


# --------------------------------------------------------------------------- successful exchanges


async def test_form_is_urlencoded_with_secrets_revealed_only_in_the_body(
    client: HttpxClient, start_peer: Callable[[Answer], Awaitable[Peer]], ca_file: str
) -> None:
    peer = await start_peer(respond())

    response = await client.send(token_request(peer.url), network=Network(ca_file))

    (seen,) = peer.requests
    assert seen.request_line == "POST /token HTTP/1.1"
    assert seen.header("Content-Type") == "application/x-www-form-urlencoded"
    assert parse_qsl(seen.body.decode("ascii"), strict_parsing=True) == [
        ("grant_type", "refresh_token"),
        ("refresh_token", SECRET_VALUE),
        ("client_id", "tokenpost-test"),
    ]
    assert seen.body == urlencode(
        [
            ("grant_type", "refresh_token"),
            ("refresh_token", SECRET_VALUE),
            ("client_id", "tokenpost-test"),
        ]
    ).encode("ascii")
    assert seen.header("Accept") == "application/json"
    assert seen.header("User-Agent") == f"tokenpost/{__version__}"
    assert seen.header("Authorization") is None
    assert response.status == 200
    assert response.body == b'{"access_token": "x", "token_type": "Bearer"}'
    assert response.header("content-type") == "application/json"
    assert ("Content-Type", "application/json") in [(k.title(), v) for k, v in response.headers]


async def test_get_without_form_sends_no_body_and_passes_extra_headers(
    client: HttpxClient, start_peer: Callable[[Answer], Awaitable[Peer]], ca_file: str
) -> None:
    peer = await start_peer(respond(body=b"{}"))
    request = HttpRequest("GET", peer.url, headers=(("X-Trace", "abc"),))

    response = await client.send(request, network=Network(ca_file))

    (seen,) = peer.requests
    assert seen.request_line == "GET /token HTTP/1.1"
    assert seen.body == b""
    assert seen.header("Content-Type") is None
    assert seen.header("X-Trace") == "abc"
    assert response.body == b"{}"


@pytest.mark.parametrize(
    ("client_id", "secret", "expected"),
    [
        # RFC 6749 §4.1.3 / §2.3.1 example credentials
        ("s6BhdRkqt3", "gX1fBat3bV", "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"),
        # form-urlencoded before base64: ':' '@' ' ' '+' are escaped
        ("a:b", "p@ss word+", "Basic " + base64.b64encode(b"a%3Ab:p%40ss+word%2B").decode()),
    ],
)
async def test_basic_auth_form_urlencodes_before_base64(
    client: HttpxClient,
    start_peer: Callable[[Answer], Awaitable[Peer]],
    ca_file: str,
    *,
    client_id: str,
    secret: str,
    expected: str,
) -> None:
    peer = await start_peer(respond())
    request = HttpRequest(
        "POST", peer.url, form=(("grant_type", "x"),), basic_auth=(client_id, Secret(secret))
    )

    await client.send(request, network=Network(ca_file))

    assert peer.requests[0].header("Authorization") == expected


@given(client_id=st.text(), secret=st.text())
def test_basic_credentials_round_trip(client_id: str, secret: str) -> None:
    scheme, _, encoded = _basic_credentials(client_id, Secret(secret)).partition(" ")
    user, sep, password = base64.b64decode(encoded).decode("ascii").partition(":")
    assert scheme == "Basic"
    assert sep == ":"
    assert (unquote_plus(user), unquote_plus(password)) == (client_id, secret)


async def test_redirect_is_returned_not_followed(
    client: HttpxClient, start_peer: Callable[[Answer], Awaitable[Peer]], ca_file: str
) -> None:
    peer = await start_peer(respond(302, b"", (("Location", "https://127.0.0.1:1/elsewhere"),)))

    response = await client.send(token_request(peer.url), network=Network(ca_file))

    assert response.status == 302
    assert response.header("Location") == "https://127.0.0.1:1/elsewhere"
    assert len(peer.requests) == 1


async def test_one_client_per_ca_file_reuses_the_connection_and_reopens_after_aclose(
    start_peer: Callable[[Answer], Awaitable[Peer]], ca_file: str
) -> None:
    peer = await start_peer(respond())
    async with HttpxClient() as http:
        await http.send(token_request(peer.url), network=Network(ca_file))
        await http.send(token_request(peer.url), network=Network(ca_file))
        assert peer.connections == 1
        await http.aclose()
        await http.send(token_request(peer.url), network=Network(ca_file))
        assert peer.connections == 2
    assert len(peer.requests) == 3


async def test_body_at_the_limit_is_accepted(
    client: HttpxClient, start_peer: Callable[[Answer], Awaitable[Peer]], ca_file: str
) -> None:
    body = b"x" * MAX_RESPONSE_BYTES
    peer = await start_peer(respond(body=body))

    response = await client.send(token_request(peer.url), network=Network(ca_file))

    assert response.body == body


# --------------------------------------------------------------------------- failures


async def test_oversized_declared_body_is_refused(
    client: HttpxClient, start_peer: Callable[[Answer], Awaitable[Peer]], ca_file: str
) -> None:
    peer = await start_peer(respond(body=b"x" * (1024 * 1024)))

    with pytest.raises(RemoteProtocolError, match="response larger than 64 KiB"):
        await client.send(token_request(peer.url), network=Network(ca_file))


async def test_endless_chunked_body_is_cut_off_at_the_limit(
    client: HttpxClient, start_peer: Callable[[Answer], Awaitable[Peer]], ca_file: str
) -> None:
    sent = 0

    async def endless(writer: asyncio.StreamWriter, _: Received) -> None:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 4096
        while True:  # until the client hangs up
            writer.write(b"1000\r\n" + chunk + b"\r\n")
            await writer.drain()
            sent += len(chunk)

    peer = await start_peer(endless)

    async with asyncio.timeout(10):
        with pytest.raises(RemoteProtocolError, match="response larger than 64 KiB"):
            await client.send(token_request(peer.url), network=Network(ca_file))
    assert sent > MAX_RESPONSE_BYTES


async def test_content_encoded_answer_is_refused(
    client: HttpxClient, start_peer: Callable[[Answer], Awaitable[Peer]], ca_file: str
) -> None:
    peer = await start_peer(respond(body=b"\x1f\x8b", headers=(("Content-Encoding", "gzip"),)))

    with pytest.raises(RemoteProtocolError, match="content-encoded"):
        await client.send(token_request(peer.url), network=Network(ca_file))
    assert peer.requests[0].header("Accept-Encoding") == "identity"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused(client: HttpxClient) -> None:
    port = _closed_port()

    with pytest.raises(TransportError) as caught:
        await client.send(
            token_request(f"https://127.0.0.1:{port}/token"), network=Network(), timeout=5
        )

    assert not isinstance(caught.value, TlsVerifyError)
    assert str(caught.value) == (
        f"cannot connect to 127.0.0.1:{port}: connection refused; check the host and port and "
        "that no firewall blocks the device"
    )


async def test_certificate_from_an_unknown_ca_does_not_verify_and_the_trust_is_named(
    start_peer: Callable[[Answer], Awaitable[Peer]], tmp_path: Path
) -> None:
    peer = await start_peer(respond())
    other_ca = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    cases = [
        (None, None, "the system trust store", "install that CA in the system trust store"),
        (str(other_ca), None, f"the CA file {other_ca} (--ca-file)", "given with --ca-file"),
        (None, str(other_ca), f"the CA file {other_ca} (TOKENPOST_CA_FILE)", "TOKENPOST_CA_FILE"),
    ]
    for ca_file, home_ca_file, trusted, fix in cases:
        async with HttpxClient(home_ca_file=home_ca_file) as client:
            with pytest.raises(TlsVerifyError) as caught:
                await client.send(token_request(peer.url), network=Network(ca_file))
        message = str(caught.value)
        assert message.startswith(
            f"the certificate of 127.0.0.1:{peer.port} did not verify: unable to get local "
            f"issuer certificate (trusted: {trusted}); "
        )
        assert fix in message.partition("); ")[2]
        german = caught.value.translate(translator("de").gettext)
        assert german.startswith(
            f"das Zertifikat von 127.0.0.1:{peer.port} konnte nicht geprüft werden: "
        )
        assert "(Vertrauensbasis: " in german
    assert peer.requests == []


async def test_missing_ca_file_is_a_usage_error(client: HttpxClient, tmp_path: Path) -> None:
    with pytest.raises(
        UsageError, match=r"cannot use the CA file .*missing\.pem \(--ca-file\): no"
    ):
        await client.send(
            token_request("https://127.0.0.1:1/token"),
            network=Network(str(tmp_path / "missing.pem")),
        )


async def close_mid_body(writer: asyncio.StreamWriter, _: Received) -> None:
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"access')
    await writer.drain()
    writer.close()


async def close_without_answer(writer: asyncio.StreamWriter, _: Received) -> None:
    writer.close()


@pytest.mark.parametrize("answer", [close_mid_body, close_without_answer])
async def test_server_closing_mid_response_is_a_transport_error(
    client: HttpxClient,
    start_peer: Callable[[Answer], Awaitable[Peer]],
    ca_file: str,
    answer: Answer,
) -> None:
    peer = await start_peer(answer)

    with pytest.raises(TransportError) as caught:
        await client.send(token_request(peer.url), network=Network(ca_file))

    assert f"127.0.0.1:{peer.port}" in str(caught.value)
    assert not isinstance(caught.value, TlsVerifyError)


async def never_answer(writer: asyncio.StreamWriter, _: Received) -> None:
    await asyncio.Event().wait()


async def test_read_timeout_is_a_transport_error(
    client: HttpxClient, start_peer: Callable[[Answer], Awaitable[Peer]], ca_file: str
) -> None:
    peer = await start_peer(never_answer)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(TransportError, match=r"did not answer in time \(read timeout\)"):
        await client.send(token_request(peer.url), network=Network(ca_file), timeout=0.3)

    assert loop.time() - started < 3
    assert len(peer.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/token",
        "ftp://login.example/token",
        "https:///token",
        "https://login.example:port/token",
        "login.example/token",
    ],
)
async def test_invalid_or_plain_http_url_is_a_usage_error(client: HttpxClient, url: str) -> None:
    with pytest.raises(UsageError):
        await client.send(token_request(url), network=Network())


def _chain_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))


@pytest.mark.parametrize(
    "answer",
    [close_mid_body, close_without_answer, never_answer, respond(body=b"x" * 100_000)],
)
async def test_no_error_message_holds_a_form_secret(
    client: HttpxClient,
    start_peer: Callable[[Answer], Awaitable[Peer]],
    ca_file: str,
    answer: Answer,
) -> None:
    peer = await start_peer(answer)
    request = HttpRequest(
        "POST",
        peer.url,
        form=(("refresh_token", Secret(SECRET_VALUE)),),
        basic_auth=("client", Secret(SECRET_VALUE)),
    )
    failures: list[TokenpostError] = []
    for target, ca in ((peer.url, ca_file), (peer.url, None), ("https://127.0.0.1:1/", None)):
        with pytest.raises(TokenpostError) as caught:
            await client.send(
                HttpRequest(request.method, target, request.form, basic_auth=request.basic_auth),
                network=Network(ca),
                timeout=0.3,
            )
        failures.append(caught.value)

    encoded = urlencode([("v", SECRET_VALUE)])[2:]
    for failure in failures:
        text = _chain_text(failure)
        for leaked in (SECRET_VALUE, encoded, "rt-S3cr3t"):
            assert leaked not in text


# --------------------------------------------------------------------------- the exception map


def _subclasses(cls: type[Exception]) -> set[type[Exception]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


def test_exception_map_covers_every_httpx_request_error() -> None:
    httpx_classes = {c for c in _subclasses(httpx.RequestError) if c.__module__.startswith("httpx")}
    assert httpx.TransportError in httpx_classes
    assert httpx_classes | {httpx.InvalidURL} <= set(exception_messages())


@pytest.mark.parametrize(
    ("httpx_error", "expected"),
    [
        (httpx.ConnectTimeout, TransportError),
        (httpx.ReadTimeout, TransportError),
        (httpx.WriteTimeout, TransportError),
        (httpx.PoolTimeout, TransportError),
        (httpx.ConnectError, TransportError),
        (httpx.ReadError, TransportError),
        (httpx.WriteError, TransportError),
        (httpx.CloseError, TransportError),
        (httpx.NetworkError, TransportError),
        (httpx.RemoteProtocolError, TransportError),
        (httpx.ProxyError, TransportError),
        (httpx.TransportError, TransportError),
        (httpx.LocalProtocolError, UsageError),
        (httpx.UnsupportedProtocol, UsageError),
        (httpx.InvalidURL, UsageError),
        (httpx.DecodingError, RemoteProtocolError),
        (httpx.TooManyRedirects, RemoteProtocolError),
    ],
)
def test_each_httpx_error_maps_to_a_tokenpost_error_naming_the_host(
    httpx_error: type[Exception], expected: type[TokenpostError]
) -> None:
    with pytest.raises(TokenpostError) as caught, mapped("login.example"):
        raise httpx_error("detail " + SECRET_VALUE)

    assert type(caught.value) is expected
    assert "login.example" in str(caught.value)
    assert SECRET_VALUE not in str(caught.value)
    german = caught.value.translate(translator("de").gettext)
    assert "login.example" in german
    assert german != str(caught.value)
    assert "{" not in german


@pytest.mark.parametrize(
    ("cause", "expected_type", "expected_message"),
    [
        (ConnectionRefusedError(111, "Connection refused"), TransportError, "connection refused"),
        (
            socket.gaierror(-2, "Name or service not known"),
            TransportError,
            "host name not resolved",
        ),
        (OSError(101, "Network is unreachable"), TransportError, "network is unreachable"),
        (ssl.SSLError(1, "[SSL] wrong version"), TransportError, "TLS handshake failed"),
        (ssl.SSLCertVerificationError(1, "verify failed"), TlsVerifyError, "did not verify"),
        (RuntimeError("something else"), TransportError, "connection failed"),
    ],
)
def test_connect_errors_name_their_cause(
    cause: Exception, expected_type: type[TokenpostError], expected_message: str
) -> None:
    wrapped = httpx.ConnectError("wrapped")
    wrapped.__cause__ = cause
    with pytest.raises(TokenpostError) as caught, mapped("login.example"):
        raise wrapped

    assert type(caught.value) is expected_type
    assert expected_message in str(caught.value)
    assert "login.example" in str(caught.value)


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(ValueError, match="not ours"), mapped("login.example"):
        raise ValueError("not ours")
