"""What a provider's OAuth error tells the administrator: the provider's words, then the fix,
in English and in German, also after being stored as a token state's reason."""

from __future__ import annotations

import json

import pytest

from tokenpost.errors import AuthorizationEndedError, OAuthError, RemoteProtocolError
from tokenpost.i18n import translator
from tokenpost.oauth.error_codes import UNKNOWN, action_for, classify
from tokenpost.oauth.http import HttpResponse
from tokenpost.oauth.pending import DevicePending
from tokenpost.oauth.rfc6749 import error_from_response, parse_token_response
from tokenpost.oauth.rfc8628 import on_poll_response
from tokenpost.secret import Secret
from tokenpost.text import Text

NOW = 1_700_000_000.0
GERMAN = translator("de").gettext

CODES = [
    "temporarily_unavailable",
    "server_error",
    "invalid_grant",
    "consent_required",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "admin_policy_enforced",
    "invalid_client",
    "unauthorized_client",
    "invalid_scope",
    "unsupported_grant_type",
    "invalid_request",
    "access_denied",
    "authorization_declined",
    "expired_token",
    "bad_verification_code",
]


def respond(status: int, body: object) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode())


def german(error: OAuthError | RemoteProtocolError) -> str:
    return error.translate(GERMAN)


@pytest.mark.parametrize("code", CODES)
def test_every_known_code_ends_in_advice_in_both_languages(code: str) -> None:
    error = error_from_response(respond(400, {"error": code, "error_description": "said"}))
    action = action_for(code)
    assert action is not None
    assert str(error) == f"token endpoint: {code}: said; {action}"
    assert german(error) == f"Token-Endpunkt: {code}: said; {action.translate(GERMAN)}"
    assert action.translate(GERMAN) != str(action)


def test_an_unknown_code_still_says_where_to_look() -> None:
    error = error_from_response(respond(400, {"error": "invalid_dpop_proof"}))
    assert type(error) is OAuthError
    assert classify("invalid_dpop_proof") == (OAuthError, UNKNOWN)
    assert str(error) == (
        "token endpoint: invalid_dpop_proof; see the provider's description; check the provider "
        "settings and the app registration"
    )


def test_invalid_grant_in_german_keeps_the_provider_text_as_it_is() -> None:
    google = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    with pytest.raises(OAuthError) as caught:
        parse_token_response(respond(400, google), now=NOW)
    assert german(caught.value) == (
        "Token-Endpunkt: invalid_grant: Token has been expired or revoked.; rufen Sie das Token "
        "erneut ab (tokenpost token get)"
    )


def test_a_stored_reason_is_shown_in_german_later() -> None:
    # A refresh failure recorded by `serve` is read later by `token status --lang de`.
    error = error_from_response(respond(400, {"error": "invalid_grant"}))
    stored = Text.from_json(json.loads(json.dumps(error.as_text().to_json())))
    assert stored == error.as_text()
    assert stored.translate(GERMAN) == german(error)


def test_invalid_client_names_the_microsoft_switch_in_german() -> None:
    body = {"error": "invalid_client", "error_description": "AADSTS7000218: …\r\nTrace ID: x"}
    text = german(error_from_response(respond(401, body)))
    assert text.startswith("Token-Endpunkt: invalid_client: AADSTS7000218: …; prüfen Sie Client-ID")
    assert "„Öffentliche Clientflows zulassen“ (Allow public client flows)" in text


def test_transient_status_says_to_try_later_in_german() -> None:
    error = error_from_response(HttpResponse(503, b"<html>busy</html>"))
    assert german(error) == (
        "Token-Endpunkt: HTTP 503, ein vorübergehendes Problem beim Anbieter; versuchen Sie es "
        "später erneut"
    )


def test_a_non_oauth_answer_points_at_the_endpoint_urls_in_german() -> None:
    error = error_from_response(HttpResponse(404, b'{"message": "no such route"}'))
    assert isinstance(error, RemoteProtocolError)
    assert german(error) == (
        "Token-Endpunkt: HTTP 404 ist keine OAuth-Fehlerantwort (RFC 6749 §5.2); prüfen Sie die "
        "Endpunkt-URLs des Anbieters und einen etwaigen Proxy dazwischen"
    )


def test_device_code_expired_by_our_clock_says_to_start_again_in_german() -> None:
    pending = DevicePending(
        device_code=Secret("device-code-value"),
        user_code="ABCD-EFGH",
        verification_uri="https://microsoft.com/devicelogin",
        expires_at=NOW + 10,
        interval=5.0,
        next_poll_at=NOW + 5,
    )
    pending_answer = respond(400, {"error": "authorization_pending"})
    with pytest.raises(AuthorizationEndedError) as caught:
        on_poll_response(pending, pending_answer, now=NOW + 9)
    assert german(caught.value) == (
        "Geräteautorisierung: expired_token; der Code ist abgelaufen, bevor die Autorisierung "
        "abgeschlossen wurde; beginnen Sie erneut mit tokenpost token get und schließen Sie "
        "innerhalb der angezeigten Zeit ab"
    )
    assert "device-code-value" not in german(caught.value)
