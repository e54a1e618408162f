"""The loopback redirect listener, driven by a real httpx client and by raw sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from tokenpost.adapters.loopback import (
    MAX_HEAD_BYTES,
    LoopbackListener,
    open_redirect_listener,
)
from tokenpost.errors import AuthorizationEndedError, UsageError
from tokenpost.ports import RedirectListener, RedirectListenerFactory

QUERY = "code=SplxlOBeZQQYbYS6WxSbIA&state=xyz%20abc&iss=https%3A%2F%2Fas.example"


@pytest.fixture
async def listener() -> AsyncIterator[LoopbackListener]:
    opened = await open_redirect_listener("/callback")
    yield opened
    await opened.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        yield client


def _port(listener: LoopbackListener) -> int:
    return httpx.URL(listener.redirect_uri).port or 0


async def _raw_exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def test_matches_the_ports() -> None:
    factory: RedirectListenerFactory = open_redirect_listener
    assert callable(factory)


async def test_redirect_uri_is_ipv4_loopback_on_a_free_port(listener: LoopbackListener) -> None:
    port = _port(listener)
    conforming: RedirectListener = listener

    assert conforming.redirect_uri == f"http://127.0.0.1:{port}/callback"
    assert port > 0


async def test_first_get_resolves_with_the_raw_query_and_answers_a_page(
    listener: LoopbackListener, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{listener.redirect_uri}?{QUERY}")

    assert await listener.wait_for_redirect() == QUERY
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = response.text
    assert "tokenpost: you can close this window" in page
    assert "Sie k&ouml;nnen dieses Fenster schlie&szlig;en" in page
    for external in ("http://", "https://", "src=", "href="):
        assert external not in page
    for secret_part in ("SplxlOBeZQQYbYS6WxSbIA", "xyz"):
        assert secret_part not in page


async def test_wait_started_before_the_request_receives_it(
    listener: LoopbackListener, http: httpx.AsyncClient
) -> None:
    async with asyncio.TaskGroup() as group:
        waiting = group.create_task(listener.wait_for_redirect())
        await asyncio.sleep(0)
        await http.get(listener.redirect_uri + "?code=a&state=b")

    assert waiting.result() == "code=a&state=b"


async def test_redirect_without_query_resolves_with_empty_string(
    listener: LoopbackListener, http: httpx.AsyncClient
) -> None:
    response = await http.get(listener.redirect_uri)

    assert response.status_code == 200
    assert await listener.wait_for_redirect() == ""


async def test_later_requests_to_the_path_are_gone(
    listener: LoopbackListener, http: httpx.AsyncClient
) -> None:
    await http.get(f"{listener.redirect_uri}?{QUERY}")

    again = await http.get(listener.redirect_uri + "?code=other&state=other")

    assert again.status_code == 410
    assert again.headers["Cache-Control"] == "no-store"
    assert await listener.wait_for_redirect() == QUERY


@pytest.mark.parametrize("path", ["/", "/favicon.ico", "/callback/", "/Callback", "/callbackx"])
async def test_other_paths_are_not_found_and_do_not_resolve(
    listener: LoopbackListener, http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(f"http://127.0.0.1:{_port(listener)}{path}?code=x&state=y")

    assert response.status_code == 404
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await listener.wait_for_redirect()


@pytest.mark.parametrize("method", ["POST", "HEAD", "PUT"])
async def test_only_get_is_served(
    listener: LoopbackListener, http: httpx.AsyncClient, method: str
) -> None:
    response = await http.request(method, listener.redirect_uri + "?code=x&state=y")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert (await http.get(listener.redirect_uri + "?code=a")).status_code == 200
    assert await listener.wait_for_redirect() == "code=a"


async def test_oversized_head_is_refused_with_400(
    listener: LoopbackListener, http: httpx.AsyncClient
) -> None:
    response = await http.get(
        listener.redirect_uri + "?code=x", headers={"X-Padding": "p" * (2 * MAX_HEAD_BYTES)}
    )

    assert response.status_code == 400
    assert (await http.get(listener.redirect_uri + "?code=ok")).status_code == 200
    assert await listener.wait_for_redirect() == "code=ok"


async def test_oversized_request_line_is_refused_with_400(listener: LoopbackListener) -> None:
    answer = await _raw_exchange(
        _port(listener), b"GET /callback?" + b"a" * MAX_HEAD_BYTES + b" HTTP/1.1\r\n\r\n"
    )

    assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize(
    "head",
    [
        b"GET /callback?code=x\r\n\r\n",
        b"GET /callback?code=x HTTP/1.1\r\n\r\n",  # no Host
        b"GET /callback?code=x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /callback?code=x HTTP/1.1\r\nHost: attacker.example:{port}\r\n\r\n",
        b"GET http://127.0.0.1/callback?code=x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"GET /callback?code=\xff HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
        b"garbage\r\n\r\n",
    ],
)
async def test_malformed_requests_are_refused_with_400(
    listener: LoopbackListener, head: bytes
) -> None:
    port = _port(listener)

    answer = await _raw_exchange(port, head.replace(b"{port}", str(port).encode()))

    assert answer.startswith(b"HTTP/1.1 400 ")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await listener.wait_for_redirect()


async def test_raw_request_with_localhost_host_is_accepted(listener: LoopbackListener) -> None:
    port = _port(listener)
    head = f"GET /callback?code=c HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode()

    answer = await _raw_exchange(port, head)

    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in answer
    assert await listener.wait_for_redirect() == "code=c"


async def test_timeout_on_wait_leaves_no_task_and_the_listener_usable(
    listener: LoopbackListener, http: httpx.AsyncClient
) -> None:
    before = asyncio.all_tasks()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await listener.wait_for_redirect()

    assert asyncio.all_tasks() == before
    await http.get(listener.redirect_uri + "?code=late")
    assert await listener.wait_for_redirect() == "code=late"


async def test_close_releases_the_port_and_is_idempotent() -> None:
    listener = await open_redirect_listener("/cb")
    port = _port(listener)

    await listener.close()
    await listener.close()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_close_ends_idle_connections_and_pending_waits() -> None:
    listener = await open_redirect_listener()
    before = asyncio.all_tasks()
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(listener))
    writer.write(b"GET /callback")  # an unfinished request keeps its connection task waiting
    await writer.drain()
    waiting = asyncio.create_task(listener.wait_for_redirect())
    await asyncio.sleep(0.05)

    await listener.close()

    with pytest.raises(AuthorizationEndedError):
        await waiting
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    assert asyncio.all_tasks() == before
    with pytest.raises(AuthorizationEndedError):
        await listener.wait_for_redirect()


async def test_redirect_received_before_close_is_still_returned(
    http: httpx.AsyncClient,
) -> None:
    listener = await open_redirect_listener()
    await http.get(listener.redirect_uri + "?code=kept")

    await listener.close()

    assert await listener.wait_for_redirect() == "code=kept"


async def test_listens_on_ipv4_loopback_only(listener: LoopbackListener) -> None:
    sockets = listener._server.sockets
    assert [(s.family, s.getsockname()[0]) for s in sockets] == [(socket.AF_INET, "127.0.0.1")]


# "0.0.0.0" is the address that must be refused, not one this test binds to.
@pytest.mark.parametrize("host", ["0.0.0.0", "::1", "192.0.2.1", "localhost", "::"])  # noqa: S104
async def test_refuses_hosts_other_than_ipv4_loopback(host: str) -> None:
    with pytest.raises(UsageError, match="IPv4 loopback"):
        await open_redirect_listener(host=host)


async def test_other_ipv4_loopback_addresses_are_allowed(http: httpx.AsyncClient) -> None:
    listener = await open_redirect_listener("/cb", host="127.0.0.2")
    try:
        assert listener.redirect_uri.startswith("http://127.0.0.2:")
        assert (await http.get(listener.redirect_uri + "?code=z")).status_code == 200
        assert await listener.wait_for_redirect() == "code=z"
    finally:
        await listener.close()


@pytest.mark.parametrize("path", ["callback", "/cb?x=1", "/cb#f", "/c b", "/c\nb", ""])
async def test_refuses_bad_paths(path: str) -> None:
    with pytest.raises(UsageError, match="redirect path"):
        await open_redirect_listener(path)
