"""RFC 8628 device authorization grant: requests, responses, every §3.5 branch, timing laws."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.errors import (
    AuthorizationEndedError,
    ClientConfigError,
    GrantInvalidError,
    OAuthError,
    RemoteProtocolError,
)
from tokenpost.oauth.http import MAX_RESPONSE_BYTES, HttpResponse
from tokenpost.oauth.rfc6749 import ClientAuth
from tokenpost.oauth.rfc8628 import (
    DEFAULT_EXPIRES_IN,
    DEFAULT_INTERVAL,
    DEVICE_CODE_GRANT,
    MAX_BACKOFF,
    DevicePending,
    Granted,
    KeepPolling,
    device_authorization_request,
    on_poll_response,
    on_transport_error,
    parse_device_authorization,
    poll_request,
    seconds_until_poll,
)
from tokenpost.secret import Secret

NOW = 1_700_000_000.0
MS_DEVICE = "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode"
MS_TOKEN = "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
DEVICE_CODE = "FAQABAAEAAAAm-06blBE1TpVMil8KPQ414yBCo3ZKuMDP8Rw0c8_m"
ACCESS = "EwB-access-token-secret"
CLIENT = ClientAuth("00001111-aaaa-2222-bbbb-3333cccc4444")

# protocols.md §1.2 (MSAL.js fixture)
MS_DEVICE_RESPONSE = {
    "user_code": "FRWQDE7YL",
    "device_code": DEVICE_CODE,
    "verification_uri": "https://microsoft.com/devicelogin",
    "expires_in": 900,
    "interval": 5,
    "message": "To sign in, use a web browser to open the page https://microsoft.com/devicelogin "
    "and enter the code FRWQDE7YL to authenticate.",
}
# protocols.md §2.3
GOOGLE_DEVICE_RESPONSE = {
    "device_code": DEVICE_CODE,
    "user_code": "XXXX-XXXX",
    "expires_in": 1800,
    "interval": 5,
    "verification_url": "https://www.google.com/device",
}
# protocols.md §1.3
MS_PENDING = (
    b'{"error":"authorization_pending","error_description":"AADSTS70016: OAuth 2.0 device flow '
    b'error. Authorization is pending. Continue polling.\\r\\nTrace ID: 0000aaaa","error_codes":'
    b'[70016],"timestamp":"2024-01-01 00:00:00Z","trace_id":"0000aaaa","correlation_id":"aaaa0000",'
    b'"error_uri":"https://login.microsoftonline.com/error?code=70016"}'
)
TOKEN_BODY = {
    "token_type": "Bearer",
    "scope": "https://outlook.office.com/SMTP.Send",
    "expires_in": 3599,
    "access_token": ACCESS,
    "refresh_token": "M.R3-refresh",
}


def respond(status: int, body: object) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode())


def pending(**changes: object) -> DevicePending:
    base = DevicePending(
        device_code=Secret(DEVICE_CODE),
        user_code="FRWQDE7YL",
        verification_uri="https://microsoft.com/devicelogin",
        expires_at=NOW + 900,
        interval=5.0,
        next_poll_at=NOW + 5,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# -- requests ----------------------------------------------------------------------------------


def test_device_authorization_request_golden() -> None:
    request = device_authorization_request(
        MS_DEVICE, CLIENT, ("https://outlook.office.com/SMTP.Send", "offline_access")
    )
    assert (request.method, request.url) == ("POST", MS_DEVICE)
    assert request.form == (
        ("client_id", "00001111-aaaa-2222-bbbb-3333cccc4444"),
        ("scope", "https://outlook.office.com/SMTP.Send offline_access"),
    )


def test_poll_request_golden_has_no_scope() -> None:
    request = poll_request(MS_TOKEN, CLIENT, pending())
    assert (request.method, request.url) == ("POST", MS_TOKEN)
    assert [(k, v.reveal() if isinstance(v, Secret) else v) for k, v in request.form] == [
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", DEVICE_CODE),
        ("client_id", "00001111-aaaa-2222-bbbb-3333cccc4444"),
    ]
    assert DEVICE_CODE not in repr(request)


def test_poll_request_confidential_client_sends_its_secret() -> None:
    request = poll_request(MS_TOKEN, ClientAuth("google-id", Secret("gsecret")), pending())
    assert [k for k, _ in request.form] == [
        "grant_type",
        "device_code",
        "client_id",
        "client_secret",
    ]


# -- device authorization response -------------------------------------------------------------


def test_microsoft_device_response() -> None:
    flow = parse_device_authorization(respond(200, MS_DEVICE_RESPONSE), now=NOW)
    assert flow.device_code == Secret(DEVICE_CODE)
    assert flow.user_code == "FRWQDE7YL"
    assert flow.verification_uri == "https://microsoft.com/devicelogin"
    assert flow.verification_uri_complete is None
    assert flow.expires_at == NOW + 900
    assert flow.interval == 5.0
    assert flow.next_poll_at == NOW + 5
    assert flow.backoff == 0.0
    assert flow.message is not None
    assert flow.message.startswith("To sign in")
    assert DEVICE_CODE not in repr(flow)


def test_google_device_response_with_verification_url() -> None:
    flow = parse_device_authorization(respond(200, GOOGLE_DEVICE_RESPONSE), now=NOW)
    assert flow.verification_uri == "https://www.google.com/device"
    assert flow.expires_at == NOW + 1800
    assert flow.message is None


def test_rfc_spelling_wins_when_both_are_sent() -> None:
    body = {**GOOGLE_DEVICE_RESPONSE, "verification_uri": "https://example.com/rfc"}
    assert parse_device_authorization(respond(200, body), now=NOW).verification_uri == (
        "https://example.com/rfc"
    )


def test_verification_uri_complete_and_string_numbers() -> None:
    body = {
        **MS_DEVICE_RESPONSE,
        "verification_uri_complete": "https://example.com/device?user_code=FRWQDE7YL",
        "interval": "7",
        "expires_in": "600",
    }
    flow = parse_device_authorization(respond(200, body), now=NOW)
    assert flow.verification_uri_complete == "https://example.com/device?user_code=FRWQDE7YL"
    assert (flow.interval, flow.expires_at, flow.next_poll_at) == (7.0, NOW + 600, NOW + 7)


def test_defaults_when_interval_and_expires_in_are_absent() -> None:
    body = {k: v for k, v in MS_DEVICE_RESPONSE.items() if k not in ("interval", "expires_in")}
    flow = parse_device_authorization(respond(200, body), now=NOW)
    assert flow.interval == DEFAULT_INTERVAL
    assert flow.expires_at == NOW + DEFAULT_EXPIRES_IN


def test_zero_interval_polls_at_most_once_a_second() -> None:
    flow = parse_device_authorization(respond(200, {**MS_DEVICE_RESPONSE, "interval": 0}), now=NOW)
    assert flow.interval == 1.0


@pytest.mark.parametrize("missing", ["device_code", "user_code", "verification_uri"])
def test_missing_required_member(missing: str) -> None:
    body = {k: v for k, v in MS_DEVICE_RESPONSE.items() if k != missing}
    with pytest.raises(RemoteProtocolError, match=f"'{missing}'"):
        parse_device_authorization(respond(200, body), now=NOW)


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("verification_uri", "javascript:alert(1)"),
        ("verification_uri", "ftp://microsoft.com/devicelogin"),
        ("verification_uri", "https://"),
        ("verification_uri", "https://evil.example/\x1b[2J"),
        ("verification_uri", "https://a b.example/"),
        ("verification_uri", 5),
        ("verification_uri_complete", "data:text/html,hi"),
        ("user_code", "A\nB"),
        ("user_code", "X" * 65),
        ("interval", -5),
        ("interval", "fast"),
        ("expires_in", 1.5),
        ("message", 7),
    ],
)
def test_malformed_members_are_refused(member: str, value: object) -> None:
    with pytest.raises(RemoteProtocolError, match=member):
        parse_device_authorization(respond(200, {**MS_DEVICE_RESPONSE, member: value}), now=NOW)


def test_plain_http_verification_uri_is_accepted() -> None:
    body = {**MS_DEVICE_RESPONSE, "verification_uri": "http://127.0.0.1:8443/device"}
    assert parse_device_authorization(respond(200, body), now=NOW).verification_uri.startswith(
        "http://"
    )


@pytest.mark.parametrize("raw", [b"<html/>", b"[]", b"x" * (MAX_RESPONSE_BYTES + 1)])
def test_non_json_device_response(raw: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="device authorization endpoint"):
        parse_device_authorization(HttpResponse(200, raw), now=NOW)


def test_google_refuses_gmail_scope_in_device_flow() -> None:
    body = {"error": "invalid_scope", "error_description": "Invalid device flow scope: x"}
    with pytest.raises(ClientConfigError, match="--flow browser"):
        parse_device_authorization(respond(400, body), now=NOW)


def test_microsoft_device_flow_needs_public_client() -> None:
    body = {"error": "invalid_client", "error_description": "AADSTS7000218: ...\r\nTrace ID: x"}
    with pytest.raises(ClientConfigError, match="Allow public client flows"):
        parse_device_authorization(respond(401, body), now=NOW)


# -- polling: §3.5 -----------------------------------------------------------------------------


def test_success_grants_the_token() -> None:
    outcome = on_poll_response(pending(), respond(200, TOKEN_BODY), now=NOW + 5)
    assert isinstance(outcome, Granted)
    assert outcome.grant.access_token == Secret(ACCESS)
    assert outcome.grant.expires_at == NOW + 5 + 3599


def test_success_after_expiry_is_still_granted() -> None:
    outcome = on_poll_response(pending(), respond(200, TOKEN_BODY), now=NOW + 10_000)
    assert isinstance(outcome, Granted)


def test_microsoft_authorization_pending() -> None:
    outcome = on_poll_response(pending(), HttpResponse(400, MS_PENDING), now=NOW + 5)
    assert outcome == KeepPolling(pending(next_poll_at=NOW + 10))


def test_pending_in_a_2xx_keeps_polling() -> None:
    outcome = on_poll_response(
        pending(), respond(200, {"error": "authorization_pending"}), now=NOW + 5
    )
    assert outcome == KeepPolling(pending(next_poll_at=NOW + 10))


def test_slow_down_adds_five_seconds_for_good() -> None:
    first = on_poll_response(pending(), respond(400, {"error": "slow_down"}), now=NOW + 5)
    assert first == KeepPolling(pending(interval=10.0, next_poll_at=NOW + 15))
    assert isinstance(first, KeepPolling)
    second = on_poll_response(
        first.pending, respond(400, {"error": "authorization_pending"}), now=NOW + 15
    )
    assert second == KeepPolling(pending(interval=10.0, next_poll_at=NOW + 25))


@pytest.mark.parametrize(
    "response",
    [
        HttpResponse(503, b"<html>busy</html>"),
        HttpResponse(500, b""),
        HttpResponse(429, b""),
        HttpResponse(408, b""),
        HttpResponse(400, b'{"error":"temporarily_unavailable"}'),
        HttpResponse(400, b'{"error":"server_error"}'),
    ],
)
def test_transient_answers_back_off_without_touching_interval(response: HttpResponse) -> None:
    outcome = on_poll_response(pending(), response, now=NOW + 5)
    assert outcome == KeepPolling(pending(backoff=10.0, next_poll_at=NOW + 15))


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("access_denied", "the authorization was denied"),
        ("authorization_declined", "the authorization was denied"),
        ("expired_token", "the code expired"),
        ("bad_verification_code", "did not recognise the device code"),
    ],
)
def test_ending_answers(code: str, words: str) -> None:
    body = {"error": code, "error_description": f"AADSTS7000: {code}\r\nTrace ID: 1"}
    with pytest.raises(AuthorizationEndedError, match=words) as caught:
        on_poll_response(pending(), respond(400, body), now=NOW + 5)
    assert caught.value.error == code
    assert DEVICE_CODE not in str(caught.value)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("invalid_grant", GrantInvalidError),
        ("invalid_client", ClientConfigError),
        ("unsupported_grant_type", ClientConfigError),
        ("something_new", OAuthError),
    ],
)
def test_other_errors_are_raised(code: str, cls: type[OAuthError]) -> None:
    with pytest.raises(cls) as caught:
        on_poll_response(pending(), respond(400, {"error": code}), now=NOW + 5)
    assert type(caught.value) is cls


def test_non_oauth_4xx_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError):
        on_poll_response(pending(), HttpResponse(400, b"<html/>"), now=NOW + 5)


@pytest.mark.parametrize("now", [NOW + 900, NOW + 901, NOW + 896])
def test_pending_at_or_near_expiry_ends_as_expired(now: float) -> None:
    with pytest.raises(AuthorizationEndedError, match="expired") as caught:
        on_poll_response(pending(), HttpResponse(400, MS_PENDING), now=now)
    assert caught.value.error == "expired_token"


def test_last_poll_just_before_expiry_is_scheduled() -> None:
    outcome = on_poll_response(pending(), HttpResponse(400, MS_PENDING), now=NOW + 894)
    assert outcome == KeepPolling(pending(next_poll_at=NOW + 899))


def test_backoff_resets_on_next_ordinary_answer() -> None:
    backed = pending(backoff=40.0, next_poll_at=NOW + 45)
    outcome = on_poll_response(backed, HttpResponse(400, MS_PENDING), now=NOW + 45)
    assert outcome == KeepPolling(pending(next_poll_at=NOW + 50))


# -- transport errors --------------------------------------------------------------------------


def test_transport_errors_back_off_exponentially_up_to_the_cap() -> None:
    flow = pending()
    now = NOW
    waits = []
    for _ in range(6):
        flow = on_transport_error(flow, now=now)
        waits.append(flow.next_poll_at - now)
        now = flow.next_poll_at
    assert waits == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    assert flow.interval == 5.0
    assert flow.backoff == MAX_BACKOFF


def test_backoff_never_shorter_than_a_large_interval() -> None:
    flow = on_transport_error(pending(interval=90.0, expires_at=NOW + 9000), now=NOW)
    assert flow.next_poll_at == NOW + 90


def test_transport_error_past_expiry_ends() -> None:
    with pytest.raises(AuthorizationEndedError, match="expired"):
        on_transport_error(pending(), now=NOW + 895)


def test_seconds_until_poll() -> None:
    assert seconds_until_poll(pending(), NOW) == 5.0
    assert seconds_until_poll(pending(), NOW + 7) == 0.0


# -- timing laws -------------------------------------------------------------------------------

OUTCOMES = {
    "pending": HttpResponse(400, MS_PENDING),
    "slow_down": HttpResponse(400, b'{"error":"slow_down"}'),
    "unavailable": HttpResponse(503, b""),
    "throttled": HttpResponse(429, b""),
    "pending_2xx": HttpResponse(200, b'{"error":"authorization_pending"}'),
}


def expected_wait(flow: DevicePending, outcome: str) -> float:
    """The wait §3.5 asks for after `outcome`: interval, +5 on slow_down, back-off on faults."""
    if outcome.startswith("pending"):
        return flow.interval
    if outcome == "slow_down":
        return flow.interval + 5
    return max(flow.interval, min(MAX_BACKOFF, 2 * max(flow.backoff, flow.interval)))


def step(flow: DevicePending, outcome: str, now: float) -> DevicePending | OAuthError:
    """One poll (or failed exchange) and what it leads to: the next flow, or the ending error."""
    try:
        if outcome == "transport":
            return on_transport_error(flow, now=now)
        result = on_poll_response(flow, OUTCOMES[outcome], now=now)
    except OAuthError as ended:
        return ended
    assert isinstance(result, KeepPolling)
    return result.pending


@given(
    steps=st.lists(
        st.tuples(st.sampled_from([*OUTCOMES, "transport"]), st.floats(0, 120)), max_size=40
    ),
    expires_in=st.integers(1, 3600),
    interval=st.integers(1, 30),
)
def test_polling_timing_laws(
    steps: list[tuple[str, float]], expires_in: int, interval: int
) -> None:
    flow = pending(
        expires_at=NOW + expires_in, interval=float(interval), next_poll_at=NOW + interval
    )
    for outcome, lateness in steps:
        now = flow.next_poll_at + lateness  # polls happen when due, or later
        after = step(flow, outcome, now)
        if isinstance(after, OAuthError):
            assert type(after) is AuthorizationEndedError
            assert after.error == "expired_token"
            assert now + expected_wait(flow, outcome) >= flow.expires_at  # no poll would fit
            return
        assert after.interval >= flow.interval  # never decreases
        assert after.next_poll_at >= now + after.interval  # never early
        assert after.next_poll_at < after.expires_at  # never past expiry
        assert after.expires_at == flow.expires_at
        assert after.backoff <= MAX_BACKOFF
        assert after.next_poll_at == now + expected_wait(flow, outcome)
        expected_interval = flow.interval + 5 if outcome == "slow_down" else flow.interval
        assert after.interval == expected_interval  # only slow_down changes it, for good
        flow = after
