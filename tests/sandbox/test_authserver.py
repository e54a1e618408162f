"""The sandbox authorization server, exercised with plain httpx (no tokenpost code).

Each test proves one behaviour tokenpost's own tests will rely on: discovery, the device flow and
its errors, auth code + PKCE with `iss`, refresh rotation with replay detection, client
credentials, revocation, introspection, injected faults, and TLS verified against the CA.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_support import (
    DEFAULT_USER,
    Sandbox,
    SandboxError,
    SandboxProcess,
    ca_context,
    start_sandbox,
)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_CODE = re.compile(r"^[A-Z]{4}-[A-Z]{4}$")
# tokenpost refuses token responses above this size (oauth/http.py MAX_RESPONSE_BYTES).
CLIENT_RESPONSE_LIMIT = 64 * 1024
# RFC 7636 Appendix B.
RFC7636_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC7636_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.issuer, verify=ca_context(sandbox.ca_file)) as client:
        yield client


# --- helpers ----------------------------------------------------------------------------------


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: str = response.json()["error"]
    return error


def start_device(sandbox: Sandbox, http: httpx.Client, scope: str = "mail") -> dict[str, Any]:
    response = http.post("/device", data={"client_id": sandbox.clients.public, "scope": scope})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def poll(sandbox: Sandbox, http: httpx.Client, device_code: str) -> httpx.Response:
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code}
    return http.post("/token", data={**form, "client_id": sandbox.clients.public})


def device_tokens(
    sandbox: Sandbox, http: httpx.Client, *, user: str = DEFAULT_USER, scope: str = "mail"
) -> dict[str, Any]:
    """Run a whole device flow (interval 0) and return the token response."""
    sandbox.control.config(device_interval=0)
    started = start_device(sandbox, http, scope)
    sandbox.control.approve(started["user_code"], user=user)
    response = poll(sandbox, http, started["device_code"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refresh(sandbox: Sandbox, http: httpx.Client, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return http.post("/token", data={**form, "client_id": sandbox.clients.public})


def introspect(sandbox: Sandbox, http: httpx.Client, token: str) -> dict[str, Any]:
    mailserver = sandbox.clients.mailserver
    response = http.post(
        "/introspect", data={"token": token}, auth=(mailserver.client_id, mailserver.secret)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def authorize_url(
    sandbox: Sandbox, redirect_uri: str, *, state: str = "st-1", challenge: str | None = None
) -> str:
    query = {
        "response_type": "code",
        "client_id": sandbox.clients.public,
        "redirect_uri": redirect_uri,
        "scope": "mail",
        "state": state,
    }
    if challenge is not None:
        query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return "/authorize?" + urlencode(query)


def redirect_params(response: httpx.Response, redirect_uri: str) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def code_tokens(
    sandbox: Sandbox, http: httpx.Client, redirect_uri: str, code: str, verifier: str
) -> httpx.Response:
    return http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": sandbox.clients.public,
            "code_verifier": verifier,
        },
    )


def assert_token_shape(body: dict[str, Any], *, with_refresh: bool) -> None:
    assert body["token_type"] == "Bearer"
    assert body["access_token"].startswith("sbx_at_")
    assert len(body["access_token"]) >= 40
    if with_refresh:
        assert body["refresh_token"].startswith("sbx_rt_")
        assert len(body["refresh_token"]) >= 40
    else:
        assert "refresh_token" not in body


# --- discovery and TLS ------------------------------------------------------------------------


def test_metadata_is_served_at_both_well_known_paths(sandbox: Sandbox, http: httpx.Client) -> None:
    rfc8414 = http.get("/.well-known/oauth-authorization-server").json()
    oidc = http.get("/.well-known/openid-configuration").json()

    assert rfc8414 == oidc
    issuer = sandbox.issuer
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", issuer)
    assert rfc8414["issuer"] == issuer
    assert rfc8414["authorization_endpoint"] == issuer + "/authorize"
    assert rfc8414["token_endpoint"] == issuer + "/token"
    assert rfc8414["device_authorization_endpoint"] == issuer + "/device"
    assert rfc8414["revocation_endpoint"] == issuer + "/revoke"
    assert rfc8414["introspection_endpoint"] == issuer + "/introspect"
    assert rfc8414["code_challenge_methods_supported"] == ["S256"]
    assert set(rfc8414["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
        DEVICE_GRANT,
    }
    assert rfc8414["authorization_response_iss_parameter_supported"] is True
    assert {"offline_access", "mail.send"} <= set(rfc8414["scopes_supported"])
    assert sandbox.control.stats().requests["metadata"] == 2


def test_tls_verifies_with_the_sandbox_ca(sandbox: Sandbox) -> None:
    with httpx.Client(verify=ca_context(sandbox.ca_file)) as client:
        assert client.get(sandbox.url("/.well-known/openid-configuration")).status_code == 200


def test_tls_is_refused_without_the_sandbox_ca(sandbox: Sandbox) -> None:
    with httpx.Client() as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
        client.get(sandbox.url("/.well-known/openid-configuration"))


def test_a_silent_connection_does_not_stall_other_clients(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    host, port = urlsplit(sandbox.issuer).netloc.split(":")
    with socket.create_connection((host, int(port))):
        # This connection never starts its TLS handshake; the server must still answer others.
        response = http.get("/.well-known/oauth-authorization-server", timeout=5)
    assert response.status_code == 200


# --- device authorization grant (RFC 8628) ----------------------------------------------------


def test_device_authorization_response(sandbox: Sandbox, http: httpx.Client) -> None:
    body = start_device(sandbox, http)

    assert USER_CODE.match(body["user_code"])
    assert len(body["device_code"]) >= 32
    assert body["verification_uri"] == sandbox.issuer + "/activate"
    assert body["verification_uri_complete"] == (
        sandbox.issuer + "/activate?user_code=" + body["user_code"]
    )
    assert body["expires_in"] == 600
    assert body["interval"] == 5


def test_device_lifetime_and_interval_are_knobs(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(device_expires_in=30, device_interval=0)

    body = start_device(sandbox, http)

    assert (body["expires_in"], body["interval"]) == (30, 0)


def test_device_flow_pending_then_approved(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(device_interval=0)
    started = start_device(sandbox, http)

    pending = poll(sandbox, http, started["device_code"])
    assert (pending.status_code, error_of(pending)) == (400, "authorization_pending")

    sandbox.control.approve(started["user_code"], user="bob@example.test")
    granted = poll(sandbox, http, started["device_code"])

    assert granted.status_code == 200, granted.text
    assert granted.headers["cache-control"] == "no-store"
    body = granted.json()
    assert_token_shape(body, with_refresh=True)
    assert body["expires_in"] == 3600
    assert body["scope"] == "mail"
    assert introspect(sandbox, http, body["access_token"])["sub"] == "bob@example.test"
    stats = sandbox.control.stats()
    assert stats.grants_by_type["device_code"] == 1
    assert stats.requests["device"] == 1
    assert stats.requests["token"] == 2


def test_device_code_is_redeemed_only_once(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(device_interval=0)
    started = start_device(sandbox, http)
    sandbox.control.approve(started["user_code"])
    assert poll(sandbox, http, started["device_code"]).status_code == 200

    again = poll(sandbox, http, started["device_code"])

    assert (again.status_code, error_of(again)) == (400, "invalid_grant")


def test_polling_faster_than_the_interval_gets_slow_down(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    sandbox.control.config(device_interval=5)
    started = start_device(sandbox, http)

    first = poll(sandbox, http, started["device_code"])
    second = poll(sandbox, http, started["device_code"])

    assert error_of(first) == "authorization_pending"
    assert (second.status_code, error_of(second)) == (400, "slow_down")


@pytest.mark.parametrize(
    ("action", "expected"), [("deny", "access_denied"), ("expire", "expired_token")]
)
def test_device_flow_ends_without_a_token(
    sandbox: Sandbox, http: httpx.Client, action: str, expected: str
) -> None:
    sandbox.control.config(device_interval=0)
    started = start_device(sandbox, http)
    getattr(sandbox.control, action)(started["user_code"])

    response = poll(sandbox, http, started["device_code"])

    assert (response.status_code, error_of(response)) == (400, expected)


def test_unknown_device_code_is_invalid_grant(sandbox: Sandbox, http: httpx.Client) -> None:
    response = poll(sandbox, http, "no-such-device-code")

    assert error_of(response) == "invalid_grant"


def test_approving_an_unknown_user_code_is_an_error(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError, match="404"):
        sandbox.control.approve("ABCD-EFGH")


def test_activate_page_escapes_the_user_code(sandbox: Sandbox, http: httpx.Client) -> None:
    page = http.get("/activate", params={"user_code": "<b>X</b>"})

    assert page.status_code == 200
    assert "&lt;b&gt;X&lt;/b&gt;" in page.text
    assert "<b>" not in page.text


# --- authorization code + PKCE (RFC 6749 §4.1, RFC 7636, RFC 8252, RFC 9207) ------------------


def test_auth_code_with_pkce(sandbox: Sandbox, http: httpx.Client) -> None:
    redirect_uri = "http://127.0.0.1:49152/callback"
    url = authorize_url(sandbox, redirect_uri, state="s-42", challenge=RFC7636_CHALLENGE)

    params = redirect_params(http.get(url), redirect_uri)

    assert params["state"] == "s-42"
    assert params["iss"] == sandbox.issuer
    response = code_tokens(sandbox, http, redirect_uri, params["code"], RFC7636_VERIFIER)
    assert response.status_code == 200, response.text
    assert_token_shape(response.json(), with_refresh=True)
    assert introspect(sandbox, http, response.json()["access_token"])["sub"] == DEFAULT_USER
    assert sandbox.control.stats().grants_by_type["authorization_code"] == 1


def test_wrong_verifier_is_invalid_grant_and_burns_the_code(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    redirect_uri = "http://127.0.0.1:49153/callback"
    verifier = secrets.token_urlsafe(48)
    params = redirect_params(
        http.get(authorize_url(sandbox, redirect_uri, challenge=s256(verifier))), redirect_uri
    )

    wrong = code_tokens(sandbox, http, redirect_uri, params["code"], secrets.token_urlsafe(48))
    retry = code_tokens(sandbox, http, redirect_uri, params["code"], verifier)

    assert (wrong.status_code, error_of(wrong)) == (400, "invalid_grant")
    assert error_of(retry) == "invalid_grant"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(port=st.integers(min_value=1, max_value=65535))
def test_any_loopback_port_matches_the_registered_redirect(
    sandbox: Sandbox, http: httpx.Client, port: int
) -> None:
    redirect_uri = f"http://127.0.0.1:{port}/callback"

    params = redirect_params(
        http.get(authorize_url(sandbox, redirect_uri, challenge=RFC7636_CHALLENGE)), redirect_uri
    )

    assert params["code"]


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(port=st.integers(min_value=1, max_value=65535))
def test_localhost_matches_at_any_port_as_at_microsoft(
    sandbox: Sandbox, http: httpx.Client, port: int
) -> None:
    # protocols.md §1.7: http://localhost registered, the port chosen by the app at run time.
    redirect_uri = f"http://localhost:{port}"

    params = redirect_params(
        http.get(authorize_url(sandbox, redirect_uri, challenge=RFC7636_CHALLENGE)), redirect_uri
    )

    assert params["code"]


def test_a_registered_port_is_ignored_too(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(redirect_uris=["http://127.0.0.1:8400/tp/"])
    redirect_uri = "http://127.0.0.1:9400/tp/"

    params = redirect_params(
        http.get(authorize_url(sandbox, redirect_uri, challenge=RFC7636_CHALLENGE)), redirect_uri
    )

    assert params["code"]
    refused = http.get(
        authorize_url(sandbox, "http://127.0.0.1:8400/tp", challenge=RFC7636_CHALLENGE)
    )
    assert refused.status_code == 400


def test_the_exchange_needs_the_redirect_uri_of_the_request(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    redirect_uri = "http://localhost:5003"
    params = redirect_params(
        http.get(authorize_url(sandbox, redirect_uri, challenge=RFC7636_CHALLENGE)), redirect_uri
    )

    other = code_tokens(sandbox, http, redirect_uri + "/", params["code"], RFC7636_VERIFIER)

    assert (other.status_code, error_of(other)) == (400, "invalid_grant")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:8080/other",  # unregistered path
        "https://127.0.0.1:8080/callback",  # not the registered scheme
        "http://localhost:8080/callback",  # localhost is registered without this path
        "http://localhost:8080/",  # …and without a trailing slash: matching is exact
        "http://127.0.0.1:8080/callback/",
        "http://127.0.0.1:8080/Callback",
        "http://[::1]:8080",  # not registered
        "http://evil.example:8080/callback",
        "http://evil.example/callback",
    ],
)
def test_unregistered_redirect_uri_is_refused_without_redirecting(
    sandbox: Sandbox, http: httpx.Client, redirect_uri: str
) -> None:
    response = http.get(authorize_url(sandbox, redirect_uri, challenge=RFC7636_CHALLENGE))

    assert response.status_code == 400
    assert "location" not in response.headers
    assert error_of(response) == "invalid_request"


def test_unknown_client_is_refused_without_redirecting(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    query = {"response_type": "code", "client_id": "nobody", "redirect_uri": "http://127.0.0.1/c"}

    response = http.get("/authorize?" + urlencode(query))

    assert (response.status_code, error_of(response)) == (400, "invalid_client")


@pytest.mark.parametrize(
    ("extra", "description"),
    [
        ({}, "code_challenge is missing"),
        ({"code_challenge": RFC7636_CHALLENGE, "code_challenge_method": "plain"}, "S256"),
        ({"code_challenge": RFC7636_CHALLENGE}, "S256"),
    ],
)
def test_pkce_s256_is_required(
    sandbox: Sandbox, http: httpx.Client, extra: dict[str, str], description: str
) -> None:
    redirect_uri = "http://127.0.0.1:5000/callback"
    url = authorize_url(sandbox, redirect_uri, state="s-1") + "&" + urlencode(extra)

    params = redirect_params(http.get(url), redirect_uri)

    assert params["error"] == "invalid_request"
    assert description in params["error_description"]
    assert (params["state"], params["iss"]) == ("s-1", sandbox.issuer)


def test_browser_deny_redirects_access_denied(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(browser_decision="deny")
    redirect_uri = "http://127.0.0.1:5001/callback"

    params = redirect_params(
        http.get(authorize_url(sandbox, redirect_uri, state="s-9", challenge=RFC7636_CHALLENGE)),
        redirect_uri,
    )

    assert params["error"] == "access_denied"
    assert (params["state"], params["iss"]) == ("s-9", sandbox.issuer)
    assert "code" not in params


def test_redirect_state_and_iss_can_be_made_wrong(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(
        redirect_state_override="forged", redirect_iss_override="https://mix-up.example"
    )
    redirect_uri = "http://127.0.0.1:5002/callback"

    location = http.get(
        authorize_url(sandbox, redirect_uri, state="s-1", challenge=RFC7636_CHALLENGE)
    ).headers["location"]

    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["forged"]
    assert query["iss"] == ["https://mix-up.example"]


def test_browser_user_and_redirect_uris_are_knobs(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(
        browser_user="carol@example.test", redirect_uris=["http://[::1]/tokenpost"]
    )
    redirect_uri = "http://[::1]:6000/tokenpost"

    params = redirect_params(
        http.get(authorize_url(sandbox, redirect_uri, challenge=RFC7636_CHALLENGE)), redirect_uri
    )
    tokens = code_tokens(sandbox, http, redirect_uri, params["code"], RFC7636_VERIFIER).json()

    assert introspect(sandbox, http, tokens["access_token"])["sub"] == "carol@example.test"


# --- refresh: rotation and replay detection (RFC 6749 §6, RFC 9700 §4.14) ---------------------


def test_refresh_rotates_the_refresh_token(sandbox: Sandbox, http: httpx.Client) -> None:
    first = device_tokens(sandbox, http)

    response = refresh(sandbox, http, first["refresh_token"])

    assert response.status_code == 200, response.text
    second = response.json()
    assert_token_shape(second, with_refresh=True)
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert refresh(sandbox, http, second["refresh_token"]).status_code == 200
    assert sandbox.control.stats().grants_by_type["refresh_token"] == 2


def test_replayed_refresh_token_revokes_the_family(sandbox: Sandbox, http: httpx.Client) -> None:
    first = device_tokens(sandbox, http)
    second = refresh(sandbox, http, first["refresh_token"]).json()

    replay = refresh(sandbox, http, first["refresh_token"])

    assert (replay.status_code, error_of(replay)) == (400, "invalid_grant")
    assert error_of(refresh(sandbox, http, second["refresh_token"])) == "invalid_grant"
    assert introspect(sandbox, http, second["access_token"]) == {"active": False}
    stats = sandbox.control.stats()
    assert stats.refresh_replays == 1
    assert [(r.reason, r.user) for r in stats.revoked] == [("replay", DEFAULT_USER)]
    assert stats.active_access_tokens == 0


def test_concurrent_refreshes_with_one_token_trip_replay_detection(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    tokens = device_tokens(sandbox, http)
    sandbox.control.config(response_delay=0.3)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: refresh(sandbox, http, tokens["refresh_token"]), [1, 2]))

    assert sorted(r.status_code for r in answers) == [200, 400]
    winner = next(r.json() for r in answers if r.status_code == 200)
    assert error_of(refresh(sandbox, http, winner["refresh_token"])) == "invalid_grant"
    assert sandbox.control.stats().refresh_replays == 1


def test_without_rotation_the_refresh_token_is_reusable(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    sandbox.control.config(rotate_refresh_tokens=False)
    tokens = device_tokens(sandbox, http)

    answers = [refresh(sandbox, http, tokens["refresh_token"]) for _ in range(2)]

    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert_token_shape(answer.json(), with_refresh=False)
    assert sandbox.control.stats().refresh_replays == 0


def test_revoke_user_revokes_only_that_users_grants(sandbox: Sandbox, http: httpx.Client) -> None:
    alice = [device_tokens(sandbox, http) for _ in range(2)]
    bob = device_tokens(sandbox, http, user="bob@example.test")

    assert sandbox.control.revoke_user(DEFAULT_USER) == 2

    for tokens in alice:
        assert error_of(refresh(sandbox, http, tokens["refresh_token"])) == "invalid_grant"
    assert refresh(sandbox, http, bob["refresh_token"]).status_code == 200
    assert {r.reason for r in sandbox.control.stats().revoked} == {"revoke_user"}


# --- token lifetime knobs ---------------------------------------------------------------------


def test_access_token_lifetime_and_omitted_expires_in(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(access_token_lifetime=120)
    assert device_tokens(sandbox, http)["expires_in"] == 120

    sandbox.control.config(omit_expires_in=True)
    assert "expires_in" not in device_tokens(sandbox, http)


def test_expired_access_token_is_inactive(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(access_token_lifetime=0)

    tokens = device_tokens(sandbox, http)

    assert introspect(sandbox, http, tokens["access_token"]) == {"active": False}
    assert sandbox.control.stats().active_access_tokens == 0


# --- client credentials (RFC 6749 §4.4) -------------------------------------------------------


@pytest.mark.parametrize("method", ["basic", "post"])
def test_client_credentials_for_the_confidential_app(
    sandbox: Sandbox, http: httpx.Client, method: str
) -> None:
    app = sandbox.clients.app
    form = {"grant_type": "client_credentials", "scope": "mail"}
    if method == "basic":
        response = http.post("/token", data=form, auth=(app.client_id, app.secret))
    else:
        response = http.post(
            "/token", data={**form, "client_id": app.client_id, "client_secret": app.secret}
        )

    assert response.status_code == 200, response.text
    assert_token_shape(response.json(), with_refresh=False)
    info = introspect(sandbox, http, response.json()["access_token"])
    assert (info["active"], info["client_id"]) == (True, app.client_id)
    assert "sub" not in info
    assert sandbox.control.stats().grants_by_type["client_credentials"] == 1


def test_client_credentials_with_a_wrong_secret(sandbox: Sandbox, http: httpx.Client) -> None:
    form = {"grant_type": "client_credentials"}

    response = http.post("/token", data=form, auth=(sandbox.clients.app.client_id, "wrong"))

    assert (response.status_code, error_of(response)) == (401, "invalid_client")


def test_public_client_may_not_use_client_credentials(sandbox: Sandbox, http: httpx.Client) -> None:
    form = {"grant_type": "client_credentials", "client_id": sandbox.clients.public}

    response = http.post("/token", data=form)

    # RFC 6749 §4.4: only a client that authenticates may use this grant; a public one cannot.
    assert error_of(response) == "invalid_client"


# --- revocation (RFC 7009) and introspection (RFC 7662) ---------------------------------------


def test_revoking_a_refresh_token_revokes_its_grant(sandbox: Sandbox, http: httpx.Client) -> None:
    tokens = device_tokens(sandbox, http)
    form = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}

    response = http.post("/revoke", data={**form, "client_id": sandbox.clients.public})

    assert response.status_code == 200
    assert error_of(refresh(sandbox, http, tokens["refresh_token"])) == "invalid_grant"
    assert introspect(sandbox, http, tokens["access_token"]) == {"active": False}
    revoked = sandbox.control.stats().revoked
    assert [(r.reason, r.token_kind) for r in revoked] == [("revocation", "refresh_token")]


def test_revoking_an_access_token_leaves_the_refresh_token(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    tokens = device_tokens(sandbox, http)

    response = http.post(
        "/revoke", data={"token": tokens["access_token"], "client_id": sandbox.clients.public}
    )

    assert response.status_code == 200
    assert introspect(sandbox, http, tokens["access_token"]) == {"active": False}
    assert refresh(sandbox, http, tokens["refresh_token"]).status_code == 200


def test_revoking_an_unknown_token_succeeds(sandbox: Sandbox, http: httpx.Client) -> None:
    response = http.post(
        "/revoke", data={"token": "sbx_rt_unknown", "client_id": sandbox.clients.public}
    )

    assert response.status_code == 200
    assert sandbox.control.stats().revoked == ()


def test_introspection_reports_the_account(sandbox: Sandbox, http: httpx.Client) -> None:
    before = time.time()
    tokens = device_tokens(sandbox, http, scope="mail.send mail.read")

    info = introspect(sandbox, http, tokens["access_token"])

    assert info["active"] is True
    assert info["sub"] == DEFAULT_USER
    assert info["scope"] == "mail.send mail.read"
    assert info["client_id"] == sandbox.clients.public
    assert before + 3600 - 5 <= info["exp"] <= time.time() + 3600 + 5


def test_introspection_requires_the_mailserver_credentials(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    tokens = device_tokens(sandbox, http)
    app = sandbox.clients.app
    form = {"token": tokens["access_token"]}

    anonymous = http.post("/introspect", data=form)
    as_app = http.post("/introspect", data=form, auth=(app.client_id, app.secret))

    assert (anonymous.status_code, error_of(anonymous)) == (401, "invalid_client")
    assert as_app.json() == {"active": False}


def test_unknown_token_is_inactive(sandbox: Sandbox, http: httpx.Client) -> None:
    assert introspect(sandbox, http, "sbx_at_nothing") == {"active": False}


# --- injected faults --------------------------------------------------------------------------


def test_fault_kinds_on_the_token_endpoint(sandbox: Sandbox, http: httpx.Client) -> None:
    """Each kind, armed for one request; the request after it is answered normally."""
    for kind in [
        "http_503",
        "non_json",
        "oversized",
        "missing_access_token",
        "invalid_grant",
        "invalid_client",
        "slow_down",
    ]:
        sandbox.control.fault("token", kind)
        faulted = refresh(sandbox, http, "sbx_rt_unknown")
        check_fault(kind, faulted)
        assert error_of(refresh(sandbox, http, "sbx_rt_unknown")) == "invalid_grant"


def check_fault(kind: str, response: httpx.Response) -> None:
    status, content_type = response.status_code, response.headers["content-type"]
    if kind == "http_503":
        assert (status, response.headers["retry-after"]) == (503, "1")
    elif kind == "non_json":
        assert (status, content_type.split(";")[0]) == (200, "text/html")
    elif kind == "oversized":
        assert status == 200
        assert len(response.content) > CLIENT_RESPONSE_LIMIT
    elif kind == "missing_access_token":
        assert status == 200
        assert "access_token" not in response.json()
    elif kind == "invalid_client":
        assert (status, error_of(response)) == (401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic")
    else:
        assert (status, error_of(response)) == (400, kind)


@pytest.mark.parametrize(
    ("endpoint", "method", "path"),
    [
        ("metadata", "GET", "/.well-known/oauth-authorization-server"),
        ("device", "POST", "/device"),
        ("revoke", "POST", "/revoke"),
        ("introspect", "POST", "/introspect"),
    ],
)
def test_faults_apply_to_the_named_endpoint_count_times(
    sandbox: Sandbox, http: httpx.Client, endpoint: str, method: str, path: str
) -> None:
    sandbox.control.fault(endpoint, "http_503", count=2)
    form = {"client_id": sandbox.clients.public, "token": "x"}
    auth = (sandbox.clients.mailserver.client_id, sandbox.clients.mailserver.secret)

    statuses = [
        http.request(method, path, data=form if method == "POST" else None, auth=auth).status_code
        for _ in range(3)
    ]
    other = http.post("/token", data={"grant_type": "refresh_token"}).status_code

    assert statuses == [503, 503, 200]
    assert other != 503  # the fault is armed for one endpoint only
    assert sandbox.control.stats().requests[endpoint] == 3


def test_response_delay(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(response_delay=0.3)

    started = time.monotonic()
    http.get("/.well-known/oauth-authorization-server")

    assert time.monotonic() - started >= 0.3


# --- control API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Basic d3Jvbmc6a2V5"},
    ],
    ids=["no key", "wrong key", "not bearer"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/control/approve"), ("POST", "/control/config"), ("GET", "/control/stats")],
)
def test_the_control_api_refuses_a_request_without_its_key(
    sandbox: Sandbox, http: httpx.Client, method: str, path: str, headers: dict[str, str]
) -> None:
    sandbox.control.config(device_interval=0)
    started = start_device(sandbox, http)

    response = http.request(method, path, json={"user_code": started["user_code"]}, headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "control.key" in response.json()["error_description"]
    pending = poll(sandbox, http, started["device_code"])
    assert error_of(pending) == "authorization_pending"  # nothing was approved


def test_the_control_key_is_random_and_readable_by_its_user_only(
    sandbox_process: SandboxProcess, tmp_path: Path
) -> None:
    key_file = sandbox_process.ready.control_key_file
    assert key_file.parent == sandbox_process.ready.ca_file.parent
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_text(encoding="ascii").strip()) >= 40

    other = start_sandbox(tmp_path / "other")
    try:
        assert other.ready.control_key_file.read_text() != key_file.read_text()
    finally:
        other.stop()


def test_config_round_trips_every_knob(sandbox: Sandbox) -> None:
    knobs = sandbox.control.knobs()

    assert sandbox.control.config(**knobs) == knobs
    assert knobs["browser_user"] == DEFAULT_USER
    assert knobs["rotate_refresh_tokens"] is True


@pytest.mark.parametrize(
    ("knobs", "field"),
    [
        ({"no_such_knob": 1}, "no_such_knob"),
        ({"device_interval": -1}, "device_interval"),
        ({"device_interval": True}, "device_interval"),
        ({"omit_expires_in": "yes"}, "omit_expires_in"),
        ({"browser_decision": "maybe"}, "browser_decision"),
        ({"response_delay": "1"}, "response_delay"),
        ({"redirect_uris": "http://127.0.0.1/callback"}, "redirect_uris"),
    ],
)
def test_config_rejects_bad_knobs(sandbox: Sandbox, knobs: dict[str, object], field: str) -> None:
    with pytest.raises(SandboxError, match=f"400.*{field}"):
        sandbox.control.config(**knobs)


@pytest.mark.parametrize(
    "body",
    [
        {"endpoint": "nowhere", "kind": "http_503"},
        {"endpoint": "token", "kind": "explode"},
        {"endpoint": "token", "kind": "http_503", "count": -1},
    ],
)
def test_fault_rejects_bad_requests(sandbox: Sandbox, body: dict[str, Any]) -> None:
    with pytest.raises(SandboxError, match="400"):
        sandbox.control.fault(**body)


def test_reset_clears_state_and_knobs(sandbox: Sandbox, http: httpx.Client) -> None:
    tokens = device_tokens(sandbox, http)
    sandbox.control.config(access_token_lifetime=5)
    sandbox.control.fault("token", "http_503")

    sandbox.control.reset()

    stats = sandbox.control.stats()
    assert set(stats.requests.values()) == {0}
    assert set(stats.grants_by_type.values()) == {0}
    assert stats.active_access_tokens == 0
    assert sandbox.control.knobs()["access_token_lifetime"] == 3600
    assert error_of(refresh(sandbox, http, tokens["refresh_token"])) == "invalid_grant"


# --- the process ------------------------------------------------------------------------------


def test_process_writes_ready_file_and_stops_cleanly(tmp_path: Path) -> None:
    process = start_sandbox(tmp_path / "sbx")

    ready = process.ready
    assert ready.ca_file == (tmp_path / "sbx" / "ca.pem").resolve()
    assert ready.clients.public == "tokenpost-test"
    assert ready.clients.app.client_id == "tokenpost-app"
    assert ready.clients.mailserver.client_id == "mailserver"
    assert ready.clients.app.secret != ready.clients.mailserver.secret
    assert process.stop() == 0


def test_start_failure_reports_the_log(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(SandboxError, match="Address already in use"):
            start_sandbox(tmp_path / "sbx", port=port)
