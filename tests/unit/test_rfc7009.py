"""RFC 7009 token revocation: golden request, success only on HTTP 200."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.oauth.http import HttpResponse
from tokenpost.oauth.rfc6749 import ClientAuth
from tokenpost.oauth.rfc7009 import revocation_request, revocation_succeeded
from tokenpost.secret import Secret

REVOKE = "https://oauth2.googleapis.com/revoke"
REFRESH = "1//0g-refresh-token-value"


def revealed(form: tuple[tuple[str, str | Secret], ...]) -> list[tuple[str, str]]:
    return [(k, v.reveal() if isinstance(v, Secret) else v) for k, v in form]


def test_revocation_request_golden_confidential() -> None:
    client = ClientAuth("x.apps.googleusercontent.com", Secret("GOCSPX-secret"))
    request = revocation_request(REVOKE, client, Secret(REFRESH), "refresh_token")
    assert (request.method, request.url) == ("POST", REVOKE)  # the token is not in the URL
    assert revealed(request.form) == [
        ("token", REFRESH),
        ("token_type_hint", "refresh_token"),
        ("client_id", "x.apps.googleusercontent.com"),
        ("client_secret", "GOCSPX-secret"),
    ]
    assert REFRESH not in repr(request)
    assert "GOCSPX-secret" not in repr(request)


def test_revocation_request_golden_public_access_token() -> None:
    request = revocation_request(REVOKE, ClientAuth("app"), Secret("at"), "access_token")
    assert revealed(request.form) == [
        ("token", "at"),
        ("token_type_hint", "access_token"),
        ("client_id", "app"),
    ]


@pytest.mark.parametrize(
    ("status", "body", "succeeded"),
    [
        (200, b"", True),
        (200, b"{}", True),
        (200, b"not json at all", True),
        (400, b'{"error":"invalid_token"}', False),  # Google's answer for an unknown token
        (400, b'{"error":"unsupported_token_type"}', False),
        (401, b'{"error":"invalid_client"}', False),
        (503, b"", False),  # §2.2.1: retry later
        (204, b"", False),
        (302, b"", False),
    ],
)
def test_revocation_succeeded_table(status: int, body: bytes, succeeded: bool) -> None:
    assert revocation_succeeded(HttpResponse(status, body)) is succeeded


@given(st.integers(100, 599), st.binary(max_size=200))
def test_revocation_succeeded_never_raises(status: int, body: bytes) -> None:
    assert revocation_succeeded(HttpResponse(status, body)) is (status == 200)
