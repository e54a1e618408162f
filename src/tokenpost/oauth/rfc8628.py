"""RFC 8628: OAuth 2.0 Device Authorization Grant (client side).

Theory of operation: `device_authorization_request` (§3.1) → `parse_device_authorization` (§3.2)
gives a `DevicePending`. The caller shows the user code and URI, then repeatedly waits
`seconds_until_poll`, sends `poll_request` (§3.4) and feeds the answer to `on_poll_response`
(§3.5), or a failed exchange to `on_transport_error`, each of which returns the next
`DevicePending` or ends the flow.

Timing invariants (checked by property tests):
- `interval` never decreases; `slow_down` adds 5 s for this and all later polls (§3.5).
- `next_poll_at >= now + interval` for every scheduled poll.
- A poll is never scheduled at or after `expires_at`; the flow ends as expired instead.
- Transient faults (connection failures, HTTP 408/429/5xx, `temporarily_unavailable`) back off
  exponentially in `backoff` (§3.5: "reduce polling frequency"), capped at `MAX_BACKOFF`, without
  touching `interval`; the next ordinary answer resets it.

Provider differences: Google spells `verification_uri` as `verification_url`; Microsoft says
`authorization_declined` where the RFC says `access_denied` and sends no
`verification_uri_complete`. `expires_in` is REQUIRED by §3.2; when a server omits it anyway we
assume 1800 s, as MSAL does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from tokenpost.errors import (
    AuthorizationEndedError,
    OAuthError,
    RemoteProtocolError,
    TransientOAuthError,
)
from tokenpost.oauth.error_codes import action_for
from tokenpost.oauth.grant import TokenGrant
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.oauth.pending import DevicePending
from tokenpost.oauth.rfc6749 import (
    JSON_HEADERS,
    TOKEN_ENDPOINT,
    ClientAuth,
    describe_error,
    error_from_response,
    is_success,
    json_object,
    optional_str,
    parse_seconds,
    parse_token_response,
    require_str,
    require_web_url,
    sanitize_text,
)
from tokenpost.secret import Secret
from tokenpost.text import Text

DEVICE_CODE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_INTERVAL: Final = 5  # §3.2: "If no value is provided, clients MUST use 5"
DEFAULT_EXPIRES_IN: Final = 1800  # MSAL's assumption when `expires_in` is missing
SLOW_DOWN_STEP: Final = 5  # §3.5
MIN_INTERVAL: Final = 1  # a server's `interval: 0` would have us poll in a busy loop
MAX_BACKOFF: Final = 60.0
USER_CODE_LIMIT: Final = 64
MESSAGE_LIMIT: Final = 500

_AUTHORIZATION: Final = Text("device authorization endpoint")
_POLL_ENDPOINT: Final = TOKEN_ENDPOINT
_FLOW: Final = Text("device authorization")


@dataclass(frozen=True, slots=True)
class Granted:
    """The user authorized the device: the token endpoint issued `grant`."""

    grant: TokenGrant


@dataclass(frozen=True, slots=True)
class KeepPolling:
    """Not yet: poll again at `pending.next_poll_at`."""

    pending: DevicePending


def device_authorization_request(
    endpoint: str, client: ClientAuth, scope: tuple[str, ...]
) -> HttpRequest:
    """The device authorization request (§3.1): client authentication and `scope`."""
    form = client.form()
    if scope:
        form += (("scope", " ".join(scope)),)
    return HttpRequest("POST", endpoint, form, JSON_HEADERS)


def parse_device_authorization(response: HttpResponse, *, now: float) -> DevicePending:
    """The device authorization response (§3.2) as a `DevicePending`, first poll after `interval`.

    Raises:
        OAuthError: the endpoint answered with an error (subclass per `error_from_response`).
        RemoteProtocolError: a missing or malformed member, oversized or non-JSON body.
    """
    if not is_success(response):
        raise error_from_response(response, what=_AUTHORIZATION)
    body = json_object(response, what=_AUTHORIZATION)
    if "error" in body:
        raise error_from_response(response, what=_AUTHORIZATION)
    device_code = require_str(body, "device_code", what=_AUTHORIZATION)
    user_code = require_str(body, "user_code", what=_AUTHORIZATION)
    if len(user_code) > USER_CODE_LIMIT or not user_code.isprintable():
        raise RemoteProtocolError(
            "{what}: 'user_code' must be at most {limit} printable characters; check the "
            "provider's endpoint URLs",
            what=_AUTHORIZATION,
            limit=USER_CODE_LIMIT,
        )
    # Google spells it verification_url; the RFC name wins when both are present.
    google_spelling = "verification_uri" not in body and "verification_url" in body
    uri_name = "verification_url" if google_spelling else "verification_uri"
    uri = require_web_url(body.get(uri_name), name=uri_name, what=_AUTHORIZATION, https_only=False)
    complete: str | None = None
    if body.get("verification_uri_complete") is not None:
        complete = require_web_url(
            body.get("verification_uri_complete"),
            name="verification_uri_complete",
            what=_AUTHORIZATION,
            https_only=False,
        )
    lifetime = _seconds_or(body, "expires_in", DEFAULT_EXPIRES_IN)
    interval = max(_seconds_or(body, "interval", DEFAULT_INTERVAL), MIN_INTERVAL)
    message = sanitize_text(optional_str(body, "message", what=_AUTHORIZATION), limit=MESSAGE_LIMIT)
    return DevicePending(
        device_code=Secret(device_code),
        user_code=user_code,
        verification_uri=uri,
        expires_at=now + lifetime,
        interval=float(interval),
        next_poll_at=now + interval,
        verification_uri_complete=complete,
        message=message or None,
    )


def _seconds_or(body: Mapping[str, object], name: str, default: int) -> int:
    value = body.get(name)
    return default if value is None else parse_seconds(value, name=name, what=_AUTHORIZATION)


def poll_request(token_endpoint: str, client: ClientAuth, pending: DevicePending) -> HttpRequest:
    """The device access token request (§3.4); it carries no `scope`."""
    form = (("grant_type", DEVICE_CODE_GRANT), ("device_code", pending.device_code))
    return HttpRequest("POST", token_endpoint, form + client.form(), JSON_HEADERS)


def seconds_until_poll(pending: DevicePending, now: float) -> float:
    """How long to wait before the next poll (never negative)."""
    return max(0.0, pending.next_poll_at - now)


def _expired() -> AuthorizationEndedError:
    code = "expired_token"
    return AuthorizationEndedError(describe_error(_FLOW, code, "", action_for(code)), error=code)


def _schedule(pending: DevicePending, *, now: float, wait: float) -> DevicePending:
    """`pending` with its next poll `wait` seconds from now (at least `interval`).

    Raises:
        AuthorizationEndedError: that poll would fall at or after `expires_at`.
    """
    next_poll_at = now + max(wait, pending.interval)
    if now >= pending.expires_at or next_poll_at >= pending.expires_at:
        raise _expired()
    return replace(pending, next_poll_at=next_poll_at)


def _back_off(pending: DevicePending, *, now: float) -> DevicePending:
    backoff = min(MAX_BACKOFF, 2 * max(pending.backoff, pending.interval))
    return _schedule(replace(pending, backoff=backoff), now=now, wait=backoff)


# §3.5 codes after which the flow cannot go on: the error already says why (denied, expired…).
_ENDING: Final = frozenset(
    {"access_denied", "authorization_declined", "expired_token", "bad_verification_code"}
)


def on_poll_response(
    pending: DevicePending, response: HttpResponse, *, now: float
) -> Granted | KeepPolling:
    """The next step after a token endpoint answer to a poll (§3.5).

    Returns:
        Granted with the token on success (even past `expires_at`: the server decided);
        KeepPolling with the next poll scheduled for `authorization_pending`, `slow_down` and
        transient faults.

    Raises:
        AuthorizationEndedError: denied, expired (by the server or by our clock), bad code.
        OAuthError: any other error (subclass per `error_from_response`).
        RemoteProtocolError: an answer outside the protocol.
    """
    error: OAuthError | RemoteProtocolError
    if is_success(response):
        try:
            return Granted(parse_token_response(response, now=now))
        except OAuthError as answered:
            error = answered  # a 2xx carrying an `error` member (seen with pending states)
    else:
        error = error_from_response(response, what=_POLL_ENDPOINT)
    if isinstance(error, RemoteProtocolError):
        raise error
    return KeepPolling(_next_after_error(pending, error, now=now))


def _next_after_error(pending: DevicePending, error: OAuthError, *, now: float) -> DevicePending:
    if error.error == "authorization_pending":
        return _schedule(replace(pending, backoff=0.0), now=now, wait=pending.interval)
    if error.error == "slow_down":
        slower = replace(pending, interval=pending.interval + SLOW_DOWN_STEP, backoff=0.0)
        return _schedule(slower, now=now, wait=slower.interval)
    if error.error in _ENDING:
        raise error
    if isinstance(error, TransientOAuthError):
        return _back_off(pending, now=now)
    raise error


def on_transport_error(pending: DevicePending, *, now: float) -> DevicePending:
    """The next poll after an exchange that failed (connection, timeout: §3.5 asks to back off).

    Raises:
        AuthorizationEndedError: the code expires before another poll could be sent.
    """
    return _back_off(pending, now=now)
