"""The web page's small parsers: Accept-Language, --listen, the login throttle's counting."""

from __future__ import annotations

import pytest

from tokenpost.errors import UsageError
from tokenpost.web.language import choose, from_accept_language
from tokenpost.web.server import Listen, check_plain_http
from tokenpost.web.sessions import Sessions
from tokenpost.web.throttle import LockoutPolicy, LoginThrottle


@pytest.mark.parametrize(
    ("header", "lang"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("fr, de;q=0.5", "de"),
        ("de;q=0, en;q=0.1", "en"),
        ("*", None),
        ("fr-CA", None),
        ("de;q=bogus, en", "en"),
        ("", None),
        (None, None),
    ],
)
def test_accept_language(header: str | None, lang: str | None) -> None:
    assert from_accept_language(header) == lang


def test_the_session_choice_comes_first() -> None:
    assert choose("de", "en") == "de"
    assert choose(None, "de") == "de"
    assert choose("xx", None) == "en"


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:8025", "127.0.0.1", 8025, True),
        ("[::1]:8025", "::1", 8025, True),
        ("localhost:0", "localhost", 0, True),
        ("0.0.0.0:443", "0.0.0.0", 443, False),  # noqa: S104 - parsed, never bound here
        ("device.example:8025", "device.example", 8025, False),
    ],
)
def test_listen(text: str, host: str, port: int, loopback: bool) -> None:
    listen = Listen.parse(text)
    assert (listen.host, listen.port, listen.is_loopback) == (host, port, loopback)


@pytest.mark.parametrize("text", ["8025", "127.0.0.1", ":8025", "127.0.0.1:x", "h:70000"])
def test_bad_listen(text: str) -> None:
    with pytest.raises(UsageError, match="give HOST:PORT"):
        Listen.parse(text)


def test_plain_http_only_on_loopback() -> None:
    check_plain_http(Listen("127.0.0.1", 8025), tls=False)
    check_plain_http(Listen("192.0.2.1", 8025), tls=True)
    with pytest.raises(UsageError, match="--tls-cert and --tls-key"):
        check_plain_http(Listen("192.0.2.1", 8025), tls=False)


def test_failures_leave_the_window() -> None:
    throttle = LoginThrottle(LockoutPolicy(per_account=3, per_address=100, window_s=60))
    for t in (0.0, 30.0, 61.0):  # the first has left the window by the third
        throttle.failed("admin", "192.0.2.1", t)
    assert throttle.locked_until("admin", "192.0.2.1", 61.0) is None
    throttle.failed("admin", "192.0.2.1", 62.0)  # three within a minute
    assert throttle.locked_until("ADMIN", "192.0.2.9", 62.0) == 62.0 + 900
    assert throttle.locked_until("admin", "192.0.2.9", 962.0) is None


def test_throttle_memory_is_bounded() -> None:
    throttle = LoginThrottle(max_keys=50)
    for n in range(500):
        throttle.failed(f"name{n}", f"192.0.2.{n % 200}", 1.0)
    assert len(throttle._counters) <= 50


def test_a_flood_of_anonymous_sessions_keeps_signed_in_ones() -> None:
    sessions = Sessions(idle_s=1800, max_sessions=10)
    signed_in = sessions.sign_in(None, "admin", is_admin=True, stamp="s", now=0.0)
    for n in range(100):
        sessions.new(float(n))
    assert len(sessions) <= 10
    assert sessions.get(signed_in.id, 100.0) is signed_in
