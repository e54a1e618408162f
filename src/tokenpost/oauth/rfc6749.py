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

Messages are `Text`s that end in what the administrator can do. The provider's own words (the
`error` code, `error_description`, an HTTP status) are only ever parameters; the advice for each
error code is in `error_codes`. `what` names the
endpoint or document the answer came from: a `Text` (translated where shown) or a plain string
(shown as it is).
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

from tokenpost.errors import OAuthError, RemoteProtocolError, TransientOAuthError, UsageError
from tokenpost.oauth.error_codes import TEMPORARY, action_for, classify
from tokenpost.oauth.grant import TokenGrant
from tokenpost.oauth.http import MAX_RESPONSE_BYTES, FormValue, HttpRequest, HttpResponse
from tokenpost.secret import Secret
from tokenpost.text import Text

__all__ = [
    "ASSUMED_LIFETIME",
    "JSON_HEADERS",
    "TOKEN_ENDPOINT",
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
        raise UsageError(
            "the client credentials grant (--flow app) needs a client secret: give the provider "
            "one with --client-secret, or choose another --flow"
        )
    form: tuple[tuple[str, FormValue], ...] = (("grant_type", "client_credentials"),)
    if scope:
        form += (("scope", " ".join(scope)),)
    return HttpRequest("POST", token_endpoint, form + client.form(), JSON_HEADERS)


# -- JSON helpers shared by the RFC modules ----------------------------------------------------


def is_success(response: HttpResponse) -> bool:
    return 200 <= response.status < 300


def json_object(response: HttpResponse, *, what: str | Text) -> Mapping[str, object]:
    """The response body as a JSON object (RFC 6749 §5.1 / §5.2, RFC 8414 §3.2).

    Raises:
        RemoteProtocolError: oversized, not UTF-8 JSON, or not an object.
    """
    if len(response.body) > MAX_RESPONSE_BYTES:
        raise RemoteProtocolError(
            "{what}: response larger than {limit} bytes; check the provider's endpoint URLs",
            what=what,
            limit=MAX_RESPONSE_BYTES,
        )
    try:
        value = json.loads(response.body)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and UnicodeDecodeError; deep nesting recurses.
        raise RemoteProtocolError(
            "{what}: HTTP {status} response is not JSON; check the provider's endpoint URLs and "
            "any proxy in between",
            what=what,
            status=response.status,
        ) from None
    if not isinstance(value, dict):
        raise RemoteProtocolError(
            "{what}: HTTP {status} response is not a JSON object; check the provider's endpoint "
            "URLs and any proxy in between",
            what=what,
            status=response.status,
        )
    return MappingProxyType(value)


def require_str(body: Mapping[str, object], name: str, *, what: str | Text) -> str:
    """Member `name`, which must be a non-empty string."""
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise RemoteProtocolError(
            "{what}: '{name}' is missing or not a non-empty string; check the provider's "
            "endpoint URLs",
            what=what,
            name=name,
        )
    return value


def optional_str(body: Mapping[str, object], name: str, *, what: str | Text) -> str | None:
    """Member `name` if present: a string (empty or null reads as absent)."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RemoteProtocolError(
            "{what}: '{name}' is not a string; check the provider's endpoint URLs",
            what=what,
            name=name,
        )
    return value


def parse_seconds(value: object, *, name: str, what: str | Text) -> int:
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
            "{what}: '{name}' must be an integer number of seconds from 0 to {limit}; check the "
            "provider's endpoint URLs",
            what=what,
            name=name,
            limit=MAX_SECONDS,
        )
    return seconds


def require_web_url(value: object, *, name: str, what: str | Text, https_only: bool = True) -> str:
    """An absolute https (or, when allowed, http) URL with a host and no fragment or spaces."""
    if isinstance(value, str) and len(value) <= 2048 and value.isprintable() and " " not in value:
        parts = urlsplit(value)
        schemes = ("https",) if https_only else ("https", "http")
        if parts.scheme in schemes and parts.hostname and not parts.fragment:
            return value
    if https_only:
        raise RemoteProtocolError(
            "{what}: '{name}' must be an https URL without a fragment; check the provider's "
            "endpoint URLs",
            what=what,
            name=name,
        )
    raise RemoteProtocolError(
        "{what}: '{name}' must be an http(s) URL without a fragment; check the provider's "
        "endpoint URLs",
        what=what,
        name=name,
    )


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

TOKEN_ENDPOINT: Final = Text("token endpoint")


def parse_token_response(response: HttpResponse, *, now: float) -> TokenGrant:
    """A token endpoint response (RFC 6749 §5.1) as a `TokenGrant`.

    Raises:
        OAuthError: a subclass chosen by `error_from_response` for an error response.
        RemoteProtocolError: an answer outside §5.1 (see the module docstring for tolerances).
    """
    what = TOKEN_ENDPOINT
    if not is_success(response):
        raise error_from_response(response, what=what)
    body = json_object(response, what=what)
    if "error" in body:
        raise error_from_response(response, what=what)
    access_token = require_str(body, "access_token", what=what)
    token_type = optional_str(body, "token_type", what=what) or "Bearer"
    if token_type.lower() != "bearer":
        raise RemoteProtocolError(
            "{what}: token_type must be Bearer (RFC 6750), not {token_type!r}; tokenpost uses "
            "bearer tokens only: check the provider's token endpoint",
            what=what,
            token_type=sanitize_text(token_type),
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


def describe_error(what: str | Text, code: str, description: str, action: Text | None) -> Text:
    """The administrator's message: "token endpoint: invalid_grant: AADSTS70000: …; action".

    `code` and `description` are the provider's (sanitized); `action` says what to do."""
    if description and action is not None:
        return Text(
            "{what}: {error}: {description}; {action}",
            what=what,
            error=code,
            description=description,
            action=action,
        )
    if action is not None:
        return Text("{what}: {error}; {action}", what=what, error=code, action=action)
    if description:
        return Text(
            "{what}: {error}: {description}", what=what, error=code, description=description
        )
    return Text("{what}: {error}", what=what, error=code)


def error_from_response(
    response: HttpResponse, *, what: str | Text = TOKEN_ENDPOINT
) -> OAuthError | RemoteProtocolError:
    """The error a failed answer means (RFC 6749 §5.2); returned, not raised.

    HTTP 408, 429 and 5xx are transient whatever the body says. Otherwise the `error` code picks
    the class and the advice (`error_codes.classify`); unknown codes give a plain `OAuthError`
    with general advice. A body that is not an OAuth error object gives `RemoteProtocolError`.
    Never branches on `error_description`.
    """
    transient = _is_transient_status(response.status)
    try:
        body: Mapping[str, object] = json_object(response, what=what)
    except RemoteProtocolError as problem:
        return _temporary(response, what) if transient else problem
    code = body.get("error")
    if not isinstance(code, str) or not _ERROR_CODE.fullmatch(code):
        if transient:
            return _temporary(response, what)
        return RemoteProtocolError(
            "{what}: HTTP {status} is not an OAuth error response (RFC 6749 §5.2); check the "
            "provider's endpoint URLs and any proxy in between",
            what=what,
            status=response.status,
        )
    description = sanitize_text(body.get("error_description"))
    cls, action = classify(code)
    if transient:
        cls, action = TransientOAuthError, TEMPORARY
    return cls(describe_error(what, code, description, action), error=code, description=description)


def _temporary(response: HttpResponse, what: str | Text) -> TransientOAuthError:
    return TransientOAuthError(
        "{what}: HTTP {status}, a temporary problem at the provider; try again later",
        what=what,
        status=response.status,
    )
