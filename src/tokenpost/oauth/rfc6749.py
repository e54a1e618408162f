"""RFC 6749 token endpoint: client authentication, token requests, responses and errors.

Client authentication is `client_secret_post` (§2.3.1: form fields), or `client_id` alone for a
public client (§2.3, §3.2.1). Requests: refresh (§6) and client credentials (§4.4). Responses:
success (§5.1) and error (§5.2). The JSON helpers here are shared by the other RFC modules.

Providers differ from the RFC in small ways handled here on purpose:
- Microsoft and MSAL send `expires_in` as a numeric string: accepted.
- A missing `token_type` is read as Bearer (some servers omit it although §5.1 requires it;
  tokenpost only ever uses bearer tokens, so nothing else would be done with it anyway).
- Microsoft puts trace lines in `error_description`: only the first line is kept, and it is never
  parsed (Microsoft says AADSTS texts change).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final
from urllib.parse import urlsplit

from tokenpost.errors import (
    AuthorizationEndedError,
    ClientConfigError,
    GrantInvalidError,
    OAuthError,
    RemoteProtocolError,
    TransientOAuthError,
    UsageError,
)
from tokenpost.oauth.grant import TokenGrant
from tokenpost.oauth.http import MAX_RESPONSE_BYTES, FormValue, HttpRequest, HttpResponse
from tokenpost.secret import Secret

__all__ = [
    "ASSUMED_LIFETIME",
    "JSON_HEADERS",
    "ClientAuth",
    "TokenGrant",
    "action_for",
    "bearer_scope",
    "client_credentials_request",
    "describe_error",
    "error_from_response",
    "is_success",
    "json_object",
    "optional_str",
    "parse_seconds",
    "parse_token_response",
    "refresh_request",
    "require_str",
    "require_web_url",
    "sanitize_text",
]

ASSUMED_LIFETIME: Final = 3600
# 2**31 - 1 seconds (68 years): any larger lifetime is nonsense, and bounding it keeps
# `now + expires_in` a finite float.
MAX_SECONDS: Final = 2**31 - 1
DESCRIPTION_LIMIT: Final = 200
JSON_HEADERS: Final[tuple[tuple[str, str], ...]] = (("Accept", "application/json"),)

# §5.2: error = 1*NQSCHAR, NQSCHAR = %x20-21 / %x23-5B / %x5D-7E. Bounded so a hostile code
# cannot flood a message.
_ERROR_CODE = re.compile(r"[\x20\x21\x23-\x5B\x5D-\x7E]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """How the client authenticates at the token endpoint (RFC 6749 §2.3).

    With a secret: `client_secret_post` (`client_id` and `client_secret` in the form, §2.3.1).
    Without one (a public client, e.g. Microsoft with "Allow public client flows"): `client_id`
    only (§3.2.1). An empty secret counts as none.
    """

    client_id: str
    client_secret: Secret | None = None

    @property
    def is_confidential(self) -> bool:
        return self.client_secret is not None and bool(self.client_secret)

    def form(self) -> tuple[tuple[str, FormValue], ...]:
        """The form fields that authenticate the client."""
        if self.client_secret is not None and self.is_confidential:
            return (("client_id", self.client_id), ("client_secret", self.client_secret))
        return (("client_id", self.client_id),)


# -- requests ----------------------------------------------------------------------------------


def refresh_request(
    token_endpoint: str,
    client: ClientAuth,
    refresh_token: Secret,
    scope: tuple[str, ...] = (),
) -> HttpRequest:
    """The refresh token request (RFC 6749 §6). `scope` may narrow, never widen, the grant."""
    form: tuple[tuple[str, FormValue], ...] = (
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    )
    if scope:
        form += (("scope", " ".join(scope)),)
    return HttpRequest("POST", token_endpoint, form + client.form(), JSON_HEADERS)


def client_credentials_request(
    token_endpoint: str, client: ClientAuth, scope: tuple[str, ...]
) -> HttpRequest:
    """The client credentials request (RFC 6749 §4.4.2), e.g. Microsoft app-only access.

    Raises:
        UsageError: the client has no secret; §4.4 is for confidential clients only.
    """
    if not client.is_confidential:
        raise UsageError("the client credentials grant (--flow app) needs a client secret")
    form: tuple[tuple[str, FormValue], ...] = (("grant_type", "client_credentials"),)
    if scope:
        form += (("scope", " ".join(scope)),)
    return HttpRequest("POST", token_endpoint, form + client.form(), JSON_HEADERS)


# -- JSON helpers shared by the RFC modules ----------------------------------------------------


def is_success(response: HttpResponse) -> bool:
    return 200 <= response.status < 300


def json_object(response: HttpResponse, *, what: str) -> Mapping[str, object]:
    """The response body as a JSON object (RFC 6749 §5.1 / §5.2, RFC 8414 §3.2).

    Raises:
        RemoteProtocolError: oversized, not UTF-8 JSON, or not an object.
    """
    if len(response.body) > MAX_RESPONSE_BYTES:
        raise RemoteProtocolError(f"{what}: response larger than {MAX_RESPONSE_BYTES} bytes")
    try:
        value = json.loads(response.body)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and UnicodeDecodeError; deep nesting recurses.
        raise RemoteProtocolError(f"{what}: HTTP {response.status} response is not JSON") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what}: HTTP {response.status} response is not a JSON object")
    return MappingProxyType(value)


def require_str(body: Mapping[str, object], name: str, *, what: str) -> str:
    """Member `name`, which must be a non-empty string."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise RemoteProtocolError(f"{what}: '{name}' is missing or not a non-empty string")
    return value


def optional_str(body: Mapping[str, object], name: str, *, what: str) -> str | None:
    """Member `name` if present: a string (empty or null reads as absent)."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RemoteProtocolError(f"{what}: '{name}' is not a string")
    return value


def parse_seconds(value: object, *, name: str, what: str) -> int:
    """A duration in seconds: a JSON integer or a string of digits (Microsoft/MSAL send both).

    Raises:
        RemoteProtocolError: anything else, negative, or above `MAX_SECONDS`.
    """
    seconds: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        seconds = int(value)
    if seconds is None or not 0 <= seconds <= MAX_SECONDS:
        raise RemoteProtocolError(
            f"{what}: '{name}' must be an integer number of seconds from 0 to {MAX_SECONDS}"
        )
    return seconds


def require_web_url(value: object, *, name: str, what: str, https_only: bool = True) -> str:
    """An absolute https (or, when allowed, http) URL with a host and no fragment or spaces."""
    if isinstance(value, str) and len(value) <= 2048 and value.isprintable() and " " not in value:
        parts = urlsplit(value)
        schemes = ("https",) if https_only else ("https", "http")
        if parts.scheme in schemes and parts.hostname and not parts.fragment:
            return value
    rule = "an https URL" if https_only else "an http(s) URL"
    raise RemoteProtocolError(f"{what}: '{name}' must be {rule} without a fragment")


def sanitize_text(value: object, *, limit: int = DESCRIPTION_LIMIT) -> str:
    """Provider text made safe to show: first line only, nothing unprintable (controls, bidi
    overrides, unassigned code points; odd spaces become plain spaces), at most `limit` chars."""
    if not isinstance(value, str):
        return ""
    lines = value.splitlines()
    first_line = lines[0] if lines else ""
    printable = "".join(_printable(ch) for ch in first_line)
    return printable.strip()[:limit].rstrip()


def _printable(ch: str) -> str:
    if ch.isprintable():
        return ch
    return " " if ch == "\t" or unicodedata.category(ch) == "Zs" else ""


def bearer_scope(text: str) -> tuple[str, ...]:
    """A space-delimited scope string (RFC 6749 §3.3) as a tuple; repeated spaces are tolerated."""
    return tuple(part for part in text.split(" ") if part)


# -- responses ---------------------------------------------------------------------------------


def parse_token_response(response: HttpResponse, *, now: float) -> TokenGrant:
    """A token endpoint response (RFC 6749 §5.1) as a `TokenGrant`.

    Raises:
        OAuthError: a subclass chosen by `error_from_response` for an error response.
        RemoteProtocolError: an answer outside §5.1 (see the module docstring for tolerances).
    """
    what = "token endpoint"
    if not is_success(response):
        raise error_from_response(response, what=what)
    body = json_object(response, what=what)
    if "error" in body:
        raise error_from_response(response, what=what)
    access_token = require_str(body, "access_token", what=what)
    token_type = optional_str(body, "token_type", what=what) or "Bearer"
    if token_type.lower() != "bearer":
        raise RemoteProtocolError(
            f"{what}: token_type must be Bearer (RFC 6750), not {sanitize_text(token_type)!r}"
        )
    expires_in = body.get("expires_in")
    lifetime = (
        ASSUMED_LIFETIME
        if expires_in is None
        else parse_seconds(expires_in, name="expires_in", what=what)
    )
    scope = optional_str(body, "scope", what=what)
    refresh_token = optional_str(body, "refresh_token", what=what)
    id_token = optional_str(body, "id_token", what=what)
    return TokenGrant(
        access_token=Secret(access_token),
        expires_at=now + lifetime,
        refresh_token=None if refresh_token is None else Secret(refresh_token),
        scope=bearer_scope(scope or ""),
        id_token=None if id_token is None else Secret(id_token),
    )


def _is_transient_status(status: int) -> bool:
    return status in (408, 429) or 500 <= status <= 599


_MS_PUBLIC_CLIENT = (
    'for a Microsoft public client enable "Allow public client flows" and configure no secret '
    "(AADSTS7000218 / AADSTS700025)"
)
_AUTHORIZE_AGAIN = "obtain the token again (tokenpost token get)"

# error code → (class, what the administrator should do). Codes not listed are plain OAuthError.
_ERRORS: Final[Mapping[str, tuple[type[OAuthError], str]]] = MappingProxyType(
    {
        "temporarily_unavailable": (TransientOAuthError, "temporary; retrying later"),
        "server_error": (TransientOAuthError, "temporary; retrying later"),
        "invalid_grant": (GrantInvalidError, _AUTHORIZE_AGAIN),
        "consent_required": (GrantInvalidError, "consent is required; " + _AUTHORIZE_AGAIN),
        "interaction_required": (GrantInvalidError, "sign-in is required; " + _AUTHORIZE_AGAIN),
        "login_required": (GrantInvalidError, "sign-in is required; " + _AUTHORIZE_AGAIN),
        "account_selection_required": (GrantInvalidError, _AUTHORIZE_AGAIN),
        # Google: a Workspace administrator restricted the app (protocols.md §2.5, §6).
        "admin_policy_enforced": (
            GrantInvalidError,
            "an administrator restricted this app; ask them, then " + _AUTHORIZE_AGAIN,
        ),
        "invalid_client": (
            ClientConfigError,
            "check the provider's client ID and secret; " + _MS_PUBLIC_CLIENT,
        ),
        "unauthorized_client": (
            ClientConfigError,
            "the app registration does not allow this flow; check its settings or choose "
            "another --flow",
        ),
        "invalid_scope": (
            ClientConfigError,
            "check the provider's scopes; Google refuses Gmail scopes in the device flow, "
            "use --flow browser",
        ),
        "unsupported_grant_type": (
            ClientConfigError,
            "the provider does not support this flow; choose another --flow",
        ),
        "invalid_request": (
            ClientConfigError,
            "check the provider settings (client ID, tenant, endpoints, scopes)",
        ),
        "access_denied": (AuthorizationEndedError, "the authorization was denied"),
        "authorization_declined": (AuthorizationEndedError, "the authorization was denied"),
        "expired_token": (
            AuthorizationEndedError,
            "the code expired before the authorization was completed; start again",
        ),
        "bad_verification_code": (
            AuthorizationEndedError,
            "the provider did not recognise the device code; start again",
        ),
    }
)


def action_for(code: str) -> str:
    """What the administrator should do about error `code` ("" when tokenpost has no advice)."""
    return _ERRORS.get(code, (OAuthError, ""))[1]


def describe_error(what: str, code: str, description: str, action: str) -> str:
    """The administrator's message: "token endpoint: invalid_grant: AADSTS70000: …; action"."""
    text = f"{what}: {code}: {description}" if description else f"{what}: {code}"
    return f"{text}; {action}" if action else text


def error_from_response(
    response: HttpResponse, *, what: str = "token endpoint"
) -> OAuthError | RemoteProtocolError:
    """The error a failed answer means (RFC 6749 §5.2); returned, not raised.

    HTTP 408, 429 and 5xx are transient whatever the body says. Otherwise the `error` code picks
    the class (table `_ERRORS`); unknown codes give a plain `OAuthError`. A body that is not an
    OAuth error object gives `RemoteProtocolError`. Never branches on `error_description`.
    """
    transient = _is_transient_status(response.status)
    try:
        body: Mapping[str, object] = json_object(response, what=what)
    except RemoteProtocolError as problem:
        if transient:
            return TransientOAuthError(f"{what}: HTTP {response.status}; temporary, retrying later")
        return problem
    code = body.get("error")
    if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
        if transient:
            return TransientOAuthError(f"{what}: HTTP {response.status}; temporary, retrying later")
        return RemoteProtocolError(
            f"{what}: HTTP {response.status} is not an OAuth error response (RFC 6749 §5.2)"
        )
    description = sanitize_text(body.get("error_description"))
    cls, action = _ERRORS.get(code, (OAuthError, ""))
    if transient:
        cls, action = TransientOAuthError, "temporary; retrying later"
    return cls(describe_error(what, code, description, action), error=code, description=description)
