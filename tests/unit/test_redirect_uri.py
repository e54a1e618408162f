"""Registered loopback redirect URIs (RFC 8252 §7.3): the URI sent is the registered one with the
port filled in, and a redirect matches it by host, port and path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import ClientConfigError
from tokenpost.i18n import translator
from tokenpost.oauth.redirect_uri import (
    is_redirect_target,
    parse_loopback_redirect,
    same_authority,
    same_path,
)


@pytest.mark.parametrize(
    ("registered", "sent"),
    [
        ("http://localhost", "http://localhost:53682"),
        ("http://localhost/", "http://localhost:53682/"),
        ("http://127.0.0.1", "http://127.0.0.1:53682"),
        ("http://127.0.0.1/callback", "http://127.0.0.1:53682/callback"),
        ("http://[::1]/tokenpost/", "http://[::1]:53682/tokenpost/"),
        ("http://LOCALHOST/Tp", "http://LOCALHOST:53682/Tp"),
    ],
)
def test_the_port_is_filled_in_and_the_rest_kept_exactly(registered: str, sent: str) -> None:
    assert parse_loopback_redirect(registered).with_port(53682) == sent


def test_a_registered_port_is_kept() -> None:
    redirect = parse_loopback_redirect("http://127.0.0.1:8400/cb")
    assert (redirect.port, redirect.path) == (8400, "/cb")
    assert redirect.with_port(8400) == "http://127.0.0.1:8400/cb"
    with pytest.raises(ValueError, match="another port"):
        redirect.with_port(8401)


@pytest.mark.parametrize(
    ("registered", "addresses"),
    [
        ("http://localhost", ("127.0.0.1", "::1")),
        ("http://LocalHost:9000/x", ("127.0.0.1", "::1")),
        ("http://127.0.0.1/", ("127.0.0.1",)),
        ("http://[::1]", ("::1",)),
    ],
)
def test_where_a_listener_listens(registered: str, addresses: tuple[str, ...]) -> None:
    assert parse_loopback_redirect(registered).addresses == addresses


def test_a_uri_that_breaks_the_rule_is_a_configuration_error_in_both_languages() -> None:
    with pytest.raises(ClientConfigError) as caught:
        parse_loopback_redirect("https://example.com/cb")
    assert "--redirect-uri" in str(caught.value)
    german = caught.value.translate(translator("de").gettext)
    assert german.startswith("die Weiterleitungs-URI https://example.com/cb des Anbieters")
    assert "muss http://localhost" in german


@pytest.mark.parametrize(
    ("authority", "expected"),
    [
        ("localhost:53682", True),
        ("LOCALHOST:53682", True),
        ("localhost:53683", False),
        ("localhost", False),
        ("127.0.0.1:53682", False),
        ("[::1]:53682", False),
        ("user@localhost:53682", False),
        ("localhost:53682:1", False),
        ("localhost:x", False),
        ("[::1", False),
        ("", False),
    ],
)
def test_the_authority_is_the_registered_host_and_port(authority: str, expected: bool) -> None:
    assert same_authority("http://localhost:53682/", authority) is expected


def test_port_80_may_be_left_out_as_browsers_do() -> None:
    assert same_authority("http://127.0.0.1:80/cb", "127.0.0.1")
    assert same_authority("http://[::1]:80/cb", "[::1]")


@pytest.mark.parametrize(
    ("sent", "path", "expected"),
    [
        ("http://localhost:1", "/", True),
        ("http://localhost:1", "", True),
        ("http://localhost:1/", "/", True),
        ("http://localhost:1/", "", True),
        ("http://localhost:1", "/x", False),
        ("http://localhost:1/cb", "/cb", True),
        ("http://localhost:1/cb", "/cb/", False),
        ("http://localhost:1/cb/", "/cb", False),
        ("http://localhost:1/cb", "/CB", False),
        ("http://localhost:1/café", "/caf%C3%A9", True),
        ("http://localhost:1/a%20b", "/a%20b", True),
    ],
)
def test_the_path_is_the_registered_one(sent: str, path: str, expected: bool) -> None:
    assert same_path(sent, path) is expected


@given(st.text(max_size=40), st.text(max_size=40))
def test_only_the_sent_host_port_and_path_are_a_target(authority: str, path: str) -> None:
    matched = is_redirect_target("http://127.0.0.1:8400/cb", authority=authority, path=path)
    if matched:
        assert path == "/cb"
        assert authority.startswith("127.0.0.1:")
    assert is_redirect_target("http://127.0.0.1:8400/cb", authority="127.0.0.1:8400", path="/cb")
