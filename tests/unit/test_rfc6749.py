"""RFC 6749 token endpoint core: golden requests, response parsing, the error table."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import (
    AuthorizationEndedError,
    ClientConfigError,
    GrantInvalidError,
    OAuthError,
    OperationError,
    RemoteProtocolError,
    TransientOAuthError,
    UsageError,
)
from tokenpost.oauth.http import MAX_RESPONSE_BYTES, HttpResponse
from tokenpost.oauth.rfc6749 import (
    ASSUMED_LIFETIME,
    MAX_SECONDS,
    ClientAuth,
    bearer_scope,
    client_credentials_request,
    error_from_response,
    parse_seconds,
    parse_token_response,
    refresh_request,
    sanitize_text,
)
from tokenpost.secret import Secret

NOW = 1_700_000_000.0
TOKEN_URL = "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
ACCESS = "eyJ0eXAi-access-token-value"
REFRESH = "AwABAAAAvPM1KaPlrEqdFSBzjqfTGAMx-refresh"
CLIENT_SECRET = "client-secret-value-1234"
PUBLIC = ClientAuth("00001111-aaaa-2222-bbbb-3333cccc4444")
CONFIDENTIAL = ClientAuth("app-id", Secret(CLIENT_SECRET))


def respond(status: int, body: object) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode())


def revealed(form: tuple[tuple[str, str | Secret], ...]) -> list[tuple[str, str]]:
    return [(k, v.reveal() if isinstance(v, Secret) else v) for k, v in form]


# -- requests ----------------------------------------------------------------------------------


def test_refresh_request_public_client_golden() -> None:
    request = refresh_request(TOKEN_URL, PUBLIC, Secret(REFRESH))
    assert request.method == "POST"
    assert request.url == TOKEN_URL
    assert request.basic_auth is None
    assert ("Accept", "application/json") in request.headers
    assert revealed(request.form) == [
        ("grant_type", "refresh_token"),
        ("refresh_token", REFRESH),
        ("client_id", "00001111-aaaa-2222-bbbb-3333cccc4444"),
    ]


def test_refresh_request_confidential_with_scope_golden() -> None:
    request = refresh_request(
        TOKEN_URL, CONFIDENTIAL, Secret(REFRESH), ("https://mail.google.com/", "openid")
    )
    assert revealed(request.form) == [
        ("grant_type", "refresh_token"),
        ("refresh_token", REFRESH),
        ("scope", "https://mail.google.com/ openid"),
        ("client_id", "app-id"),
        ("client_secret", CLIENT_SECRET),
    ]


def test_request_repr_hides_secrets() -> None:
    text = repr(refresh_request(TOKEN_URL, CONFIDENTIAL, Secret(REFRESH)))
    assert REFRESH not in text
    assert CLIENT_SECRET not in text


def test_empty_secret_counts_as_public_client() -> None:
    request = refresh_request(TOKEN_URL, ClientAuth("app", Secret("")), Secret(REFRESH))
    assert request.form_value("client_secret") is None
    assert not ClientAuth("app", Secret("")).is_confidential


def test_client_credentials_request_golden() -> None:
    request = client_credentials_request(
        TOKEN_URL, CONFIDENTIAL, ("https://outlook.office365.com/.default",)
    )
    assert revealed(request.form) == [
        ("grant_type", "client_credentials"),
        ("scope", "https://outlook.office365.com/.default"),
        ("client_id", "app-id"),
        ("client_secret", CLIENT_SECRET),
    ]


def test_client_credentials_needs_a_secret() -> None:
    with pytest.raises(UsageError, match="client secret"):
        client_credentials_request(TOKEN_URL, PUBLIC, ("s",))


# -- success responses -------------------------------------------------------------------------


def test_microsoft_token_response() -> None:
    # protocols.md §1.4 (device doc) shape
    grant = parse_token_response(
        respond(
            200,
            {
                "token_type": "Bearer",
                "scope": "User.Read profile openid email",
                "expires_in": 3599,
                "access_token": ACCESS,
                "refresh_token": REFRESH,
                "id_token": "eyJ0eXAi-id-token",
            },
        ),
        now=NOW,
    )
    assert grant.access_token == Secret(ACCESS)
    assert grant.refresh_token == Secret(REFRESH)
    assert grant.id_token == Secret("eyJ0eXAi-id-token")
    assert grant.expires_at == NOW + 3599
    assert grant.scope == ("User.Read", "profile", "openid", "email")
    assert grant.token_type == "Bearer"


def test_microsoft_fixture_with_ext_expires_in() -> None:
    # protocols.md §5 "MS token"
    body = (
        b'{"token_type":"Bearer","scope":"https://outlook.office.com/SMTP.Send",'
        b'"expires_in":4410,"ext_expires_in":4410,"access_token":"EwB-x","refresh_token":"M.R3"}'
    )
    grant = parse_token_response(HttpResponse(200, body), now=NOW)
    assert grant.expires_at == NOW + 4410
    assert grant.scope == ("https://outlook.office.com/SMTP.Send",)


def test_google_refresh_response_has_no_refresh_token() -> None:
    grant = parse_token_response(
        respond(
            200,
            {
                "access_token": "ya29.a0-token",
                "expires_in": 3599,
                "scope": "https://mail.google.com/",
                "token_type": "Bearer",
            },
        ),
        now=NOW,
    )
    assert grant.refresh_token is None
    assert grant.id_token is None


@pytest.mark.parametrize(
    ("extra", "expected_lifetime"),
    [
        ({"expires_in": "3599"}, 3599),  # Microsoft / MSAL numeric string
        ({"expires_in": 0}, 0),
        ({}, ASSUMED_LIFETIME),
        ({"expires_in": None}, ASSUMED_LIFETIME),
    ],
)
def test_expires_in_forms(extra: dict[str, object], expected_lifetime: int) -> None:
    body = {"access_token": ACCESS, "token_type": "Bearer", **extra}
    assert parse_token_response(respond(200, body), now=NOW).expires_at == NOW + expected_lifetime


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", "BEARER", None])
def test_token_type_bearer_any_case_or_missing(token_type: str | None) -> None:
    body: dict[str, object] = {"access_token": ACCESS, "expires_in": 60}
    if token_type is not None:
        body["token_type"] = token_type
    assert parse_token_response(respond(200, body), now=NOW).token_type == "Bearer"


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({"token_type": "Bearer"}, "access_token"),
        ({"access_token": "", "token_type": "Bearer"}, "access_token"),
        ({"access_token": 12, "token_type": "Bearer"}, "access_token"),
        ({"access_token": ACCESS, "token_type": "mac"}, "token_type"),
        ({"access_token": ACCESS, "token_type": 1}, "token_type"),
        ({"access_token": ACCESS, "expires_in": -1}, "expires_in"),
        ({"access_token": ACCESS, "expires_in": 3599.5}, "expires_in"),
        ({"access_token": ACCESS, "expires_in": True}, "expires_in"),
        ({"access_token": ACCESS, "expires_in": "36OO"}, "expires_in"),
        ({"access_token": ACCESS, "expires_in": 10**400}, "expires_in"),
        ({"access_token": ACCESS, "scope": ["a"]}, "scope"),
        ({"access_token": ACCESS, "refresh_token": 5}, "refresh_token"),
        ({"access_token": ACCESS, "refresh_token": REFRESH, "id_token": [1]}, "id_token"),
    ],
)
def test_malformed_success_is_a_protocol_error(body: dict[str, object], rule: str) -> None:
    with pytest.raises(RemoteProtocolError, match=rule) as caught:
        parse_token_response(respond(200, body), now=NOW)
    for shown in (str(caught.value), repr(caught.value)):
        assert ACCESS not in shown
        assert REFRESH not in shown


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 50_000, b"access_token=x"],
)
def test_non_object_bodies(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="token endpoint"):
        parse_token_response(HttpResponse(200, raw), now=NOW)


def test_oversized_success_is_refused() -> None:
    body = json.dumps({"access_token": "x" * MAX_RESPONSE_BYTES}).encode()
    with pytest.raises(RemoteProtocolError, match="larger than"):
        parse_token_response(HttpResponse(200, body), now=NOW)


def test_error_member_in_a_2xx_is_an_error() -> None:
    with pytest.raises(GrantInvalidError):
        parse_token_response(respond(200, {"error": "invalid_grant"}), now=NOW)


def test_error_status_raises_the_mapped_error() -> None:
    google = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    with pytest.raises(GrantInvalidError) as caught:
        parse_token_response(respond(400, google), now=NOW)
    assert caught.value.error == "invalid_grant"
    assert caught.value.description == "Token has been expired or revoked."
    assert str(caught.value).startswith(
        "token endpoint: invalid_grant: Token has been expired or revoked.; "
    )


# -- error responses ---------------------------------------------------------------------------

ERROR_TABLE: list[tuple[str, type[OAuthError]]] = [
    ("temporarily_unavailable", TransientOAuthError),
    ("server_error", TransientOAuthError),
    ("invalid_grant", GrantInvalidError),
    ("consent_required", GrantInvalidError),
    ("interaction_required", GrantInvalidError),
    ("login_required", GrantInvalidError),
    ("account_selection_required", GrantInvalidError),
    ("admin_policy_enforced", GrantInvalidError),
    ("invalid_client", ClientConfigError),
    ("unauthorized_client", ClientConfigError),
    ("invalid_scope", ClientConfigError),
    ("unsupported_grant_type", ClientConfigError),
    ("invalid_request", ClientConfigError),
    ("access_denied", AuthorizationEndedError),
    ("authorization_declined", AuthorizationEndedError),
    ("expired_token", AuthorizationEndedError),
    ("bad_verification_code", AuthorizationEndedError),
    ("authorization_pending", OAuthError),
    ("slow_down", OAuthError),
    ("invalid_dpop_proof", OAuthError),
]


@pytest.mark.parametrize(("code", "cls"), ERROR_TABLE)
def test_error_code_table(code: str, cls: type[OAuthError]) -> None:
    error = error_from_response(respond(400, {"error": code}))
    assert type(error) is cls
    assert isinstance(error, OAuthError)
    assert error.error == code
    assert str(error).startswith(f"token endpoint: {code}")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
@pytest.mark.parametrize(
    "body",
    [
        b"<html>Service Unavailable</html>",
        b"",
        json.dumps({"error": "invalid_grant"}).encode(),
        json.dumps({"error": "invalid_client"}).encode(),
        b"x" * (MAX_RESPONSE_BYTES + 1),
    ],
)
def test_transient_statuses_win_over_the_body(status: int, body: bytes) -> None:
    error = error_from_response(HttpResponse(status, body))
    assert type(error) is TransientOAuthError
    assert f"HTTP {status}" in str(error) or "temporary" in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404])
@pytest.mark.parametrize(
    "body",
    [b"<html>Bad Request</html>", b"", b"[]", b'{"message": "nope"}', b'{"error": 42}'],
)
def test_4xx_without_oauth_error_json_is_a_protocol_error(status: int, body: bytes) -> None:
    assert type(error_from_response(HttpResponse(status, body))) is RemoteProtocolError


def test_oversized_4xx_is_a_protocol_error() -> None:
    body = json.dumps({"error": "invalid_grant", "pad": "x" * MAX_RESPONSE_BYTES}).encode()
    error = error_from_response(HttpResponse(400, body))
    assert type(error) is RemoteProtocolError
    assert "larger than" in str(error)


@pytest.mark.parametrize("code", ['bad"quote', "back\\slash", "new\nline", "", "é", "x" * 65])
def test_error_codes_outside_rfc_6749_charset_are_refused(code: str) -> None:
    assert type(error_from_response(respond(400, {"error": code}))) is RemoteProtocolError


def test_microsoft_description_first_line_only() -> None:
    # protocols.md §1.3 error shape
    body = {
        "error": "invalid_scope",
        "error_description": "AADSTS70011: The provided value for the input parameter 'scope' "
        "isn't valid.\r\nTrace ID: 0000aaaa-11bb-cccc-dd33-eeeeee333333\r\nCorrelation ID: "
        "aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2016-01-09 02:02:12Z",
        "error_codes": [70011],
        "timestamp": "2016-01-09 02:02:12Z",
        "trace_id": "0000aaaa-11bb-cccc-dd33-eeeeee333333",
        "correlation_id": "aaaa0000-bb11-2222-33cc-444444dddddd",
        "error_uri": "https://login.microsoftonline.com/error?code=70011",
    }
    error = error_from_response(respond(400, body))
    assert isinstance(error, ClientConfigError)
    assert error.description == (
        "AADSTS70011: The provided value for the input parameter 'scope' isn't valid."
    )
    assert "Trace ID" not in str(error)
    assert "check the provider's scopes" in str(error)


def test_google_device_scope_refusal_suggests_browser_flow() -> None:
    # protocols.md §5 "Google device scope refused"
    body = b'{"error":"invalid_scope","error_description":"Invalid device flow scope: https://mail.google.com/"}'
    error = error_from_response(HttpResponse(400, body), what="device authorization endpoint")
    assert isinstance(error, ClientConfigError)
    assert str(error) == (
        "device authorization endpoint: invalid_scope: Invalid device flow scope: "
        "https://mail.google.com/; check the provider's scopes; Google refuses Gmail scopes in "
        "the device flow, use --flow browser"
    )


def test_invalid_client_explains_microsoft_public_clients() -> None:
    body = {
        "error": "invalid_client",
        "error_description": "AADSTS7000218: The request body must contain the following "
        "parameter: 'client_assertion' or 'client_secret'.\r\nTrace ID: x",
    }
    message = str(error_from_response(respond(401, body)))
    assert "client ID and secret" in message
    assert "Allow public client flows" in message
    assert "AADSTS700025" in message


def test_description_is_sanitized_and_cut() -> None:
    body = {"error": "invalid_grant", "error_description": "\x1b[31mred\u202e" + "y" * 500}
    error = error_from_response(respond(400, body))
    assert isinstance(error, OAuthError)
    assert error.description == "[31mred" + "y" * 193
    assert len(error.description) == 200


def test_error_member_in_a_2xx_maps_by_code() -> None:
    assert type(error_from_response(respond(200, {"error": "invalid_grant"}))) is GrantInvalidError


def test_unexpected_status_without_error_is_a_protocol_error() -> None:
    assert type(error_from_response(HttpResponse(302, b""))) is RemoteProtocolError


@given(status=st.integers(100, 599), body=st.binary(max_size=300))
def test_error_from_response_never_raises(status: int, body: bytes) -> None:
    error = error_from_response(HttpResponse(status, body))
    assert isinstance(error, OAuthError | RemoteProtocolError)
    assert isinstance(error, OperationError)


@given(
    status=st.integers(400, 599),
    code=st.text(min_size=1, max_size=20),
    description=st.text(max_size=400),
)
def test_error_json_never_raises_and_description_is_clean(
    status: int, code: str, description: str
) -> None:
    error = error_from_response(respond(status, {"error": code, "error_description": description}))
    if isinstance(error, OAuthError):
        assert len(error.description) <= 200
        assert error.description.isprintable()


# -- helpers -----------------------------------------------------------------------------------


@given(st.integers(0, MAX_SECONDS))
def test_parse_seconds_accepts_ints_and_digit_strings(value: int) -> None:
    assert parse_seconds(value, name="n", what="w") == value
    assert parse_seconds(str(value), name="n", what="w") == value


@given(st.integers(max_value=-1) | st.integers(min_value=MAX_SECONDS + 1))
def test_parse_seconds_refuses_out_of_range(value: int) -> None:
    with pytest.raises(RemoteProtocolError, match="'n'"):
        parse_seconds(value, name="n", what="w")


@given(st.text(max_size=500))
def test_sanitize_text_is_one_short_printable_line(text: str) -> None:
    clean = sanitize_text(text)
    assert len(clean) <= 200
    assert clean.isprintable()
    assert "\n" not in clean
    assert "\r" not in clean


@given(st.lists(st.from_regex(r"[\x21\x23-\x5B\x5D-\x7E]{1,20}", fullmatch=True), max_size=8))
def test_bearer_scope_round_trips(scopes: list[str]) -> None:
    assert bearer_scope(" ".join(scopes)) == tuple(scopes)
    assert bearer_scope("  ".join(scopes) + " ") == tuple(scopes)
