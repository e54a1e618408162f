"""Authorization code grant with PKCE on a loopback redirect (RFC 6749 §4.1, 7636, 8252, 9207).

`start_browser_flow` builds the authorization URL (§4.1.1) with a fresh `state` and S256 code
challenge; `parse_redirect` checks what the browser brings back to the loopback listener
(§4.1.2, RFC 8252 §7.3) and returns the code; `parse_pasted_redirect` does the same for the
address the browser ended on, pasted on the terminal of a host without a browser;
`code_exchange_request` redeems the code (§4.1.3) with the code verifier (RFC 7636 §4.5).

`parse_redirect` checks in this order (pizauth's): size; repeated parameters; `state` (constant
time), so a forged redirect cannot even report an error; `iss` against the known issuer
(RFC 9207 mix-up defence); `error`; `code`. A pasted address is first checked to be the redirect
URI itself (scheme, host, port, path: `oauth.redirect_uri`). Neither `state` nor `code` ever
appears in a message, nor does a pasted address. Each refusal says what was wrong in `problem`
(`RedirectRefusedError`, `NotRedirectAddressError`): a stable word for programs.
"""

from __future__ import annotations

import secrets
from typing import Final
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit, urlunsplit

from tokenpost.errors import AuthorizationEndedError, RemoteProtocolError, UsageError
from tokenpost.oauth.http import FormValue, HttpRequest
from tokenpost.oauth.pending import BrowserPending
from tokenpost.oauth.redirect_uri import is_redirect_target, scheme_of
from tokenpost.oauth.rfc6749 import (
    JSON_HEADERS,
    ClientAuth,
    action_for,
    describe_error,
    sanitize_text,
)
from tokenpost.oauth.rfc7636 import TokenBytes, new_state, new_verifier, s256_challenge
from tokenpost.secret import Secret
from tokenpost.text import Text

BROWSER_FLOW_LIFETIME: Final = 600  # seconds; Microsoft's codes live ~10 minutes too
MAX_REDIRECT_QUERY: Final = 8 * 1024
_MAX_FIELDS: Final = 32
_REDIRECT: Final = Text("authorization redirect")
_PASTED: Final = Text("pasted address")
_START_AGAIN: Final = Text("start again with tokenpost token get")
_PASTE_AGAIN: Final = Text(
    "paste the whole address the browser shows after the sign-in, or wait for the browser"
)


class RedirectRefusedError(RemoteProtocolError):
    """What the browser brought back (or the address pasted) does not belong to the flow.

    `problem` says why, for programs: ``oversized``, ``malformed``, ``repeated``, ``state``
    (another authorization's), ``iss`` (another issuer's, RFC 9207) or ``no_code``.
    """

    def __init__(self, message: str, /, *, problem: str, **params: object) -> None:
        self.problem = problem
        super().__init__(message, **params)


class NotRedirectAddressError(UsageError):
    """A pasted address that is not the flow's redirect address at all (`problem`:
    ``not_redirect_address``)."""

    problem = "not_redirect_address"


def start_browser_flow(
    *,
    authorization_endpoint: str,
    client_id: str,
    redirect_uri: str,
    scope: tuple[str, ...],
    now: float,
    issuer: str | None = None,
    extra_params: tuple[tuple[str, str], ...] = (),
    token_bytes: TokenBytes = secrets.token_bytes,
) -> BrowserPending:
    """A new browser flow: the authorization URL to open and what the redirect must match.

    Parameters already in the endpoint's query are kept (§3.1), then come `response_type`,
    `client_id`, `redirect_uri`, `scope`, `state`, `code_challenge`, `code_challenge_method`
    and `extra_params`, in that order.

    Raises:
        UsageError: the endpoint has a fragment (§3.1 forbids it) or is not an absolute URL.
    """
    parts = urlsplit(authorization_endpoint)
    if parts.fragment or not parts.scheme or not parts.netloc:
        raise UsageError(
            "authorization endpoint: must be an absolute URL without a fragment (RFC 6749 §3.1); "
            "correct the provider's --authorization-endpoint"
        )
    state = new_state(token_bytes)
    verifier = new_verifier(token_bytes)
    params: tuple[tuple[str, str], ...] = (
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", " ".join(scope)),
        ("state", state.reveal()),  # it must go into the URL the browser opens
        ("code_challenge", s256_challenge(verifier)),
        ("code_challenge_method", "S256"),
        *extra_params,
    )
    added = urlencode(params, quote_via=quote)  # spaces as %20, as the providers document
    query = f"{parts.query}&{added}" if parts.query else added
    return BrowserPending(
        authorization_url=urlunsplit(parts._replace(query=query)),
        redirect_uri=redirect_uri,
        state=state,
        verifier=verifier,
        expires_at=now + BROWSER_FLOW_LIFETIME,
        issuer=issuer,
    )


def _redirect_params(query: str, what: Text, fix: Text) -> dict[str, str]:
    if len(query) > MAX_REDIRECT_QUERY:
        raise RedirectRefusedError(
            "{what}: query longer than {limit} bytes; {fix}",
            problem="oversized",
            what=what,
            limit=MAX_REDIRECT_QUERY,
            fix=fix,
        )
    try:
        pairs = parse_qsl(
            query.removeprefix("?"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=_MAX_FIELDS,
        )
    except ValueError:  # too many fields, or percent-escapes that are not UTF-8
        raise RedirectRefusedError(
            "{what}: the query is malformed; {fix}", problem="malformed", what=what, fix=fix
        ) from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise RedirectRefusedError(
                "{what}: parameter {name!r} is repeated; {fix}",
                problem="repeated",
                what=what,
                name=sanitize_text(name, limit=40),
                fix=fix,
            )
        params[name] = value
    return params


def parse_redirect(
    pending: BrowserPending, query: str, *, what: Text = _REDIRECT, fix: Text = _START_AGAIN
) -> Secret:
    """The authorization code from the redirect's query string (§4.1.2, §4.1.2.1).

    `what` names the redirect in messages and `fix` says what to do after a refusal.

    Raises:
        RemoteProtocolError: oversized or malformed query, repeated parameter, missing or wrong
            `state`, `iss` of another issuer, or no `code`.
        AuthorizationEndedError: the provider redirected with an `error` (e.g. access_denied).
    """
    params = _redirect_params(query, what, fix)
    state = params.get("state")
    if state is None or Secret(state) != pending.state:
        raise RedirectRefusedError(
            "{what}: state mismatch (the redirect does not belong to this authorization); {fix}",
            problem="state",
            what=what,
            fix=fix,
        )
    iss = params.get("iss")
    if iss is not None and pending.issuer is not None and iss != pending.issuer:
        raise RedirectRefusedError(
            "{what}: iss is not the expected issuer {issuer} (RFC 9207 mix-up defence); check "
            "the provider's tenant or issuer, then start again with tokenpost token get",
            problem="iss",
            what=what,
            issuer=pending.issuer,
        )
    error = params.get("error")
    if error is not None:
        code = sanitize_text(error, limit=64) or "error"
        description = sanitize_text(params.get("error_description"))
        action = action_for(code) or Text(
            "the authorization ended without a code; start again with tokenpost token get"
        )
        raise AuthorizationEndedError(
            describe_error(what, code, description, action),
            error=code,
            description=description,
        )
    code_value = params.get("code")
    if not code_value:
        raise RedirectRefusedError(
            "{what}: no code and no error in the redirect; {fix}",
            problem="no_code",
            what=what,
            fix=fix,
        )
    return Secret(code_value)


def parse_pasted_redirect(
    pending: BrowserPending, address: str, *, what: Text = _PASTED, fix: Text = _PASTE_AGAIN
) -> Secret:
    """The authorization code from the address the browser ended on, pasted by the administrator
    (the browser ran on another device, where the loopback redirect cannot load), or handed on
    by a web page's own callback.

    The address must be the redirect URI sent (`pending.redirect_uri`: scheme, host, port and
    path), with the query `parse_redirect` accepts; a fragment is ignored. The address is never
    quoted in a message: it may hold the code. `what` names the address in messages and `fix`
    says what to do after a refusal.

    Raises:
        NotRedirectAddressError: not the redirect address. RedirectRefusedError: as
            `parse_redirect` (wrong `state`, `iss`, no `code`…). After either the flow may go on.
        AuthorizationEndedError: the provider's `error` (e.g. access_denied): the flow ends.
    """
    parts = _address_parts(address)
    if (
        parts is None
        or parts.scheme.lower() != scheme_of(pending.redirect_uri)
        or not is_redirect_target(pending.redirect_uri, authority=parts.netloc, path=parts.path)
    ):
        if what is _PASTED:
            raise NotRedirectAddressError(
                "the pasted address is not this authorization's redirect address {redirect_uri};"
                " {fix}",
                redirect_uri=pending.redirect_uri,
                fix=fix,
            )
        raise NotRedirectAddressError(
            "{what}: not this authorization's redirect address {redirect_uri}; {fix}",
            what=what,
            redirect_uri=pending.redirect_uri,
            fix=fix,
        )
    return parse_redirect(pending, parts.query, what=what, fix=fix)


def address_state(address: str) -> Secret | None:
    """The `state` an address carries (a redirect's or a pasted one's), or None when it has not
    exactly one. For finding the flow an address belongs to; it proves nothing by itself."""
    parts = _address_parts(address)
    if parts is None or len(parts.query) > MAX_REDIRECT_QUERY:
        return None
    try:
        pairs = parse_qsl(parts.query, errors="strict", max_num_fields=_MAX_FIELDS)
    except ValueError:
        return None
    states = [value for name, value in pairs if name == "state"]
    return Secret(states[0]) if len(states) == 1 and states[0] else None


def _address_parts(address: str) -> SplitResult | None:
    try:
        return urlsplit(address.strip())
    except ValueError:
        return None


def code_exchange_request(
    token_endpoint: str, client: ClientAuth, pending: BrowserPending, code: Secret
) -> HttpRequest:
    """The access token request for an authorization code (§4.1.3, RFC 7636 §4.5)."""
    form: tuple[tuple[str, FormValue], ...] = (
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pending.redirect_uri),
        ("code_verifier", pending.verifier),
    )
    return HttpRequest("POST", token_endpoint, form + client.form(), JSON_HEADERS)
