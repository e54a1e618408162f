"""RFC 8414 / OpenID Connect discovery: well-known URLs and metadata validation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import RemoteProtocolError, UsageError
from tokenpost.oauth.http import MAX_RESPONSE_BYTES, HttpResponse
from tokenpost.oauth.rfc8414 import ServerMetadata, discovery_urls, parse_metadata

GOOGLE = "https://accounts.google.com"
# protocols.md §2.1 (Google's discovery document, the fields we read)
GOOGLE_DOC = {
    "issuer": "https://accounts.google.com",
    "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
    "device_authorization_endpoint": "https://oauth2.googleapis.com/device/code",
    "token_endpoint": "https://oauth2.googleapis.com/token",
    "userinfo_endpoint": "https://openidconnect.googleapis.com/v1/userinfo",
    "revocation_endpoint": "https://oauth2.googleapis.com/revoke",
    "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs",
    "response_types_supported": ["code", "token", "id_token"],
    "code_challenge_methods_supported": ["plain", "S256"],
    "grant_types_supported": [
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ],
    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
}
MS = "https://login.microsoftonline.com"
# protocols.md §1.1: the `common` document, issuer a {tenantid} template, no revocation endpoint
MS_COMMON_DOC = {
    "token_endpoint": f"{MS}/common/oauth2/v2.0/token",
    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
    "issuer": f"{MS}/{{tenantid}}/v2.0",
    "authorization_endpoint": f"{MS}/common/oauth2/v2.0/authorize",
    "device_authorization_endpoint": f"{MS}/common/oauth2/v2.0/devicecode",
    "end_session_endpoint": f"{MS}/common/oauth2/v2.0/logout",
}


def respond(body: object, status: int = 200) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode())


# -- discovery URLs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "urls"),
    [
        (  # RFC 8414 §3.1 example
            "https://example.com/issuer1",
            (
                "https://example.com/.well-known/oauth-authorization-server/issuer1",
                "https://example.com/issuer1/.well-known/openid-configuration",
            ),
        ),
        (
            "https://example.com/issuer1/",
            (
                "https://example.com/.well-known/oauth-authorization-server/issuer1",
                "https://example.com/issuer1/.well-known/openid-configuration",
            ),
        ),
        (
            "https://accounts.google.com",
            (
                "https://accounts.google.com/.well-known/oauth-authorization-server",
                "https://accounts.google.com/.well-known/openid-configuration",
            ),
        ),
        (
            "https://127.0.0.1:8443",
            (
                "https://127.0.0.1:8443/.well-known/oauth-authorization-server",
                "https://127.0.0.1:8443/.well-known/openid-configuration",
            ),
        ),
        (
            f"{MS}/common/v2.0",
            (
                f"{MS}/.well-known/oauth-authorization-server/common/v2.0",
                f"{MS}/common/v2.0/.well-known/openid-configuration",
            ),
        ),
    ],
)
def test_discovery_urls(issuer: str, urls: tuple[str, str]) -> None:
    assert discovery_urls(issuer) == urls


@pytest.mark.parametrize(
    "issuer",
    [
        "http://example.com",
        "https://",
        "example.com",
        "https://example.com/?tenant=x",
        "https://example.com/#top",
        "https://example.com?",
        "https://user:pw@example.com",
        "ftp://example.com",
    ],
)
def test_bad_issuers(issuer: str) -> None:
    with pytest.raises(UsageError, match="issuer"):
        discovery_urls(issuer)


# -- metadata ----------------------------------------------------------------------------------


def test_google_metadata() -> None:
    assert parse_metadata(respond(GOOGLE_DOC), expected_issuer=GOOGLE) == ServerMetadata(
        issuer=GOOGLE,
        token_endpoint="https://oauth2.googleapis.com/token",
        authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
        device_authorization_endpoint="https://oauth2.googleapis.com/device/code",
        revocation_endpoint="https://oauth2.googleapis.com/revoke",
        code_challenge_methods_supported=("plain", "S256"),
        grant_types_supported=(
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ),
        issuer_is_template=False,
    )


def test_scopes_supported_are_kept_when_listed_and_none_when_not() -> None:
    listed = {**GOOGLE_DOC, "scopes_supported": ["openid", "email", "profile"]}
    metadata = parse_metadata(respond(listed), expected_issuer=GOOGLE)
    assert metadata.scopes_supported == ("openid", "email", "profile")
    assert parse_metadata(respond(GOOGLE_DOC), expected_issuer=GOOGLE).scopes_supported is None
    empty = {**GOOGLE_DOC, "scopes_supported": []}
    assert parse_metadata(respond(empty), expected_issuer=GOOGLE).scopes_supported == ()


@pytest.mark.parametrize("value", ["openid email", [1, 2], {"a": "b"}])
def test_scopes_supported_must_be_a_list_of_strings(value: object) -> None:
    with pytest.raises(RemoteProtocolError, match="'scopes_supported'"):
        parse_metadata(respond({**GOOGLE_DOC, "scopes_supported": value}), expected_issuer=GOOGLE)


@pytest.mark.parametrize(
    "expected",
    [
        f"{MS}/common/v2.0",
        f"{MS}/organizations/v2.0",
        f"{MS}/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
    ],
)
def test_microsoft_tenant_template_matches_one_segment(expected: str) -> None:
    metadata = parse_metadata(respond(MS_COMMON_DOC), expected_issuer=expected)
    assert metadata.issuer == expected
    assert metadata.issuer_is_template
    assert metadata.revocation_endpoint is None
    assert metadata.device_authorization_endpoint == f"{MS}/common/oauth2/v2.0/devicecode"


@pytest.mark.parametrize(
    "expected",
    [
        f"{MS}/v2.0",
        f"{MS}/a/b/v2.0",
        f"{MS}/common/v2.0/",
        "https://login.evil.example/common/v2.0",
        f"{MS}/common/v1.0",
    ],
)
def test_template_does_not_match_anything_else(expected: str) -> None:
    with pytest.raises(RemoteProtocolError, match="'issuer'"):
        parse_metadata(respond(MS_COMMON_DOC), expected_issuer=expected)


def test_template_in_the_host_is_refused() -> None:
    doc = {**GOOGLE_DOC, "issuer": "https://{tenantid}/v2.0"}
    with pytest.raises(RemoteProtocolError, match="'issuer'"):
        parse_metadata(respond(doc), expected_issuer="https://evil.example/v2.0")


@pytest.mark.parametrize(
    "issuer", ["https://accounts.google.com/", "https://ACCOUNTS.google.com", "", None, 5]
)
def test_issuer_must_match_exactly(issuer: object) -> None:
    with pytest.raises(RemoteProtocolError, match="'issuer'"):
        parse_metadata(respond({**GOOGLE_DOC, "issuer": issuer}), expected_issuer=GOOGLE)


def test_token_endpoint_is_required() -> None:
    doc = {k: v for k, v in GOOGLE_DOC.items() if k != "token_endpoint"}
    with pytest.raises(RemoteProtocolError, match="'token_endpoint'"):
        parse_metadata(respond(doc), expected_issuer=GOOGLE)


@pytest.mark.parametrize(
    "field",
    [
        "token_endpoint",
        "authorization_endpoint",
        "device_authorization_endpoint",
        "revocation_endpoint",
    ],
)
@pytest.mark.parametrize(
    "value", ["http://oauth2.googleapis.com/x", "javascript:x", "https://a.example/#f", 7]
)
def test_endpoints_must_be_https(field: str, value: object) -> None:
    with pytest.raises(RemoteProtocolError, match=f"'{field}'"):
        parse_metadata(respond({**GOOGLE_DOC, field: value}), expected_issuer=GOOGLE)


@pytest.mark.parametrize("field", ["code_challenge_methods_supported", "grant_types_supported"])
@pytest.mark.parametrize("value", ["S256", [1], {"a": 1}])
def test_lists_must_be_string_arrays(field: str, value: object) -> None:
    with pytest.raises(RemoteProtocolError, match=field):
        parse_metadata(respond({**GOOGLE_DOC, field: value}), expected_issuer=GOOGLE)


def test_optional_fields_absent() -> None:
    doc = {"issuer": GOOGLE, "token_endpoint": "https://oauth2.googleapis.com/token"}
    metadata = parse_metadata(respond(doc), expected_issuer=GOOGLE)
    assert metadata.authorization_endpoint is None
    assert metadata.code_challenge_methods_supported == ()


@pytest.mark.parametrize(
    ("response", "words"),
    [
        (HttpResponse(404, b"not found"), "HTTP 404"),
        (HttpResponse(500, b"{}"), "HTTP 500"),
        (HttpResponse(200, b"<html/>"), "not JSON"),
        (HttpResponse(200, b"[]"), "not a JSON object"),
        (HttpResponse(200, b" " * (MAX_RESPONSE_BYTES + 1)), "larger than"),
    ],
)
def test_bad_documents(response: HttpResponse, words: str) -> None:
    with pytest.raises(RemoteProtocolError, match=words):
        parse_metadata(response, expected_issuer=GOOGLE)


def parsed(doc: dict[str, object]) -> ServerMetadata | RemoteProtocolError:
    try:
        return parse_metadata(respond(doc), expected_issuer=GOOGLE)
    except RemoteProtocolError as error:
        return error


FIELDS = st.sampled_from([*GOOGLE_DOC, "x"])
VALUES = st.none() | st.text(max_size=40) | st.integers() | st.sampled_from(["https://a.b/c"])


@given(st.dictionaries(FIELDS, VALUES, max_size=6))
def test_accepted_documents_only_hold_https_endpoints(changes: dict[str, object]) -> None:
    result = parsed({**GOOGLE_DOC, **changes})
    if isinstance(result, ServerMetadata):
        assert result.issuer == GOOGLE
        endpoints = [
            result.token_endpoint,
            result.authorization_endpoint,
            result.device_authorization_endpoint,
            result.revocation_endpoint,
        ]
        assert all(e is None or e.startswith("https://") for e in endpoints)
