"""The loopback redirect listener, driven by a real httpx client and by raw sockets: where it
listens for each registered redirect URI (dual-stack for localhost), which Host and path it
accepts, and how it answers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from loopback_support import free_port, has_ipv6_loopback
from tokenpost.adapters.loopback import (
    MAX_HEAD_BYTES,
    LoopbackListener,
    open_redirect_listener,
)
from tokenpost.errors import AuthorizationEndedError, OperationError
from tokenpost.oauth.redirect_uri import parse_loopback_redirect
from tokenpost.ports import RedirectListener, RedirectListenerFactory

needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback on this host")

QUERY = "code=SplxlOBeZQQYbYS6WxSbIA&state=xyz%20abc&iss=https%3A%2F%2Fas.example"


async def listen(uri: str) -> LoopbackListener:
    return await open_redirect_listener(parse_loopback_redirect(uri))


@pytest.fixture
async def listener() -> AsyncIterator[LoopbackListener]:
    opened = await listen("http://127.0.0.1/callback")
    yield opened
    await opened.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        yield client


def _port(listener: LoopbackListener) -> int:
    return httpx.URL(listener.redirect_uri).port or 0


async def _raw_exchange(port: int, data: bytes, address: str = "127.0.0.1") -> bytes:
    reader, writer = await asyncio.open_connection(address, port)
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


async def test_redirect_uri_is_the_registered_one_on_a_free_port(
    listener: LoopbackListener,
) -> None:
    port = _port(listener)
    conforming: RedirectListener = listener

    assert conforming.redirect_uri == f"http://127.0.0.1:{port}/callback"
    assert port > 0
    assert conforming.requests == 0


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


@pytest.mark.parametrize(
    "host", ["localhost:{port}", "127.0.0.1:{other}", "127.0.0.1", "[::1]:{port}"]
)
async def test_a_host_other_than_the_registered_one_is_refused(
    listener: LoopbackListener, host: str
) -> None:
    port = _port(listener)
    named = host.format(port=port, other=port + 1 if port < 65535 else port - 1)
    head = f"GET /callback?code=c HTTP/1.1\r\nHost: {named}\r\n\r\n".encode()

    answer = await _raw_exchange(port, head)

    assert answer.startswith(b"HTTP/1.1 400 ")
    assert listener.requests == 1


async def test_the_host_compares_without_regard_to_case() -> None:
    listener = await listen("http://localhost/cb")
    try:
        port = _port(listener)
        head = f"GET /cb?code=c HTTP/1.1\r\nHost: LocalHost:{port}\r\n\r\n".encode()

        answer = await _raw_exchange(port, head)

        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Connection: close\r\n" in answer
        assert await listener.wait_for_redirect() == "code=c"
    finally:
        await listener.close()


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
    listener = await listen("http://127.0.0.1/cb")
    port = _port(listener)

    await listener.close()
    await listener.close()

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_close_ends_idle_connections_and_pending_waits() -> None:
    listener = await listen("http://127.0.0.1/callback")
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
    listener = await listen("http://127.0.0.1/callback")
    await http.get(listener.redirect_uri + "?code=kept")

    await listener.close()

    assert await listener.wait_for_redirect() == "code=kept"


async def test_counts_every_request_that_reaches_it(
    listener: LoopbackListener, http: httpx.AsyncClient
) -> None:
    await http.get(f"http://127.0.0.1:{_port(listener)}/favicon.ico")
    await http.post(listener.redirect_uri)

    assert listener.requests == 2


# --- where it listens, per registered redirect URI --------------------------------------------


async def test_127_0_0_1_listens_on_ipv4_loopback_only(listener: LoopbackListener) -> None:
    sockets = [(family, address) for family, address in listener.addresses]
    assert sockets == [(socket.AF_INET, "127.0.0.1")]


async def test_localhost_listens_on_both_loopback_addresses_on_one_port(
    http: httpx.AsyncClient,
) -> None:
    listener = await listen("http://localhost")
    try:
        port = _port(listener)
        assert listener.redirect_uri == f"http://localhost:{port}"
        expected = [(socket.AF_INET, "127.0.0.1")]
        if has_ipv6_loopback():
            expected.append((socket.AF_INET6, "::1"))
        assert list(listener.addresses) == expected
        answer = await http.get(
            f"http://127.0.0.1:{port}/?code=four", headers={"Host": f"localhost:{port}"}
        )
        assert answer.status_code == 200
        assert await listener.wait_for_redirect() == "code=four"
    finally:
        await listener.close()


@needs_ipv6
async def test_localhost_takes_the_redirect_over_ipv6(http: httpx.AsyncClient) -> None:
    # Browsers resolve localhost to ::1 first: the redirect must arrive there too.
    listener = await listen("http://localhost/")
    try:
        port = _port(listener)
        answer = await http.get(
            f"http://[::1]:{port}/?code=six&state=s", headers={"Host": f"localhost:{port}"}
        )
        assert answer.status_code == 200
        assert await listener.wait_for_redirect() == "code=six&state=s"
    finally:
        await listener.close()


@needs_ipv6
async def test_ipv6_literal_listens_on_ipv6_loopback_only(http: httpx.AsyncClient) -> None:
    listener = await listen("http://[::1]/cb")
    try:
        port = _port(listener)
        assert listener.redirect_uri == f"http://[::1]:{port}/cb"
        assert list(listener.addresses) == [(socket.AF_INET6, "::1")]
        assert (await http.get(listener.redirect_uri + "?code=v6")).status_code == 200
        assert await listener.wait_for_redirect() == "code=v6"
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        await listener.close()


@needs_ipv6
async def test_localhost_refuses_a_port_another_program_holds_on_ipv6() -> None:
    # Traffic to ::1 would reach the other program: listening on IPv4 alone is not enough.
    port = free_port("::1")
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as other:
        other.bind(("::1", port))
        other.listen()
        with pytest.raises(OperationError, match=f"cannot use port {port} on ::1"):
            await listen(f"http://localhost:{port}/cb")
    with pytest.raises(ConnectionRefusedError):  # nothing was left listening on IPv4 either
        await asyncio.open_connection("127.0.0.1", port)


# --- the registered port and path ---------------------------------------------------------------


async def test_a_registered_port_is_used_and_the_uri_kept_exactly(http: httpx.AsyncClient) -> None:
    port = free_port()
    listener = await listen(f"http://127.0.0.1:{port}/tokenpost/")
    try:
        assert listener.redirect_uri == f"http://127.0.0.1:{port}/tokenpost/"
        assert (await http.get(f"http://127.0.0.1:{port}/tokenpost?code=x")).status_code == 404
        assert (await http.get(listener.redirect_uri + "?code=y")).status_code == 200
        assert await listener.wait_for_redirect() == "code=y"
    finally:
        await listener.close()


async def test_a_registered_port_can_be_used_again_at_once(http: httpx.AsyncClient) -> None:
    # The first run's closed connections linger in TIME_WAIT on the listener's side.
    port = free_port()
    for code in ("one", "two"):
        listener = await listen(f"http://127.0.0.1:{port}/cb")
        try:
            assert (await http.get(f"{listener.redirect_uri}?code={code}")).status_code == 200
            assert await listener.wait_for_redirect() == f"code={code}"
        finally:
            await listener.close()


async def test_a_registered_port_in_use_is_refused_with_the_fix() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(OperationError) as refused:
            await listen(f"http://127.0.0.1:{port}")
    message = str(refused.value)
    assert f"cannot use port {port} on 127.0.0.1: another program listens there" in message
    assert "without a port" in message


@pytest.mark.parametrize("registered", ["http://127.0.0.1", "http://127.0.0.1/"])
@pytest.mark.parametrize(("path", "status"), [("/", 200), ("", 200), ("/x", 404), ("//", 404)])
async def test_no_path_and_slash_are_the_same(
    http: httpx.AsyncClient, registered: str, path: str, status: int
) -> None:
    listener = await listen(registered)
    try:
        port = _port(listener)
        head = f"GET {path or '/'}?code=p HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        answer = await _raw_exchange(port, head.encode())
        assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    finally:
        await listener.close()


async def test_a_path_outside_ascii_matches_as_the_browser_escapes_it(
    http: httpx.AsyncClient,
) -> None:
    listener = await listen("http://127.0.0.1/café")
    try:
        answer = await http.get(f"http://127.0.0.1:{_port(listener)}/caf%C3%A9?code=e")
        assert answer.status_code == 200
        assert await listener.wait_for_redirect() == "code=e"
    finally:
        await listener.close()
