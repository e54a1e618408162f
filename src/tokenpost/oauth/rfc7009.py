"""RFC 7009: OAuth 2.0 Token Revocation (client side).

The request (§2.1) is a form POST with `token` and `token_type_hint`, the client authenticated as
at the token endpoint. The token goes in the body, never in the URL (RFC 9700 §4.3.2; Google
documents a query parameter but accepts the form body). §2.2: HTTP 200 means the token is gone,
including when it was already invalid. Entra has no revocation endpoint at all.
"""

from __future__ import annotations

from typing import Literal

from tokenpost.oauth.http import FormValue, HttpRequest, HttpResponse
from tokenpost.oauth.rfc6749 import JSON_HEADERS, ClientAuth
from tokenpost.secret import Secret

TokenTypeHint = Literal["refresh_token", "access_token"]


def revocation_request(
    endpoint: str, client: ClientAuth, token: Secret, hint: TokenTypeHint
) -> HttpRequest:
    """The revocation request (§2.1). Revoking a refresh token also ends its access tokens."""
    form: tuple[tuple[str, FormValue], ...] = (("token", token), ("token_type_hint", hint))
    return HttpRequest("POST", endpoint, form + client.form(), JSON_HEADERS)


def revocation_succeeded(response: HttpResponse) -> bool:
    """True only for HTTP 200 (§2.2). Errors and 503 (§2.2.1: retry later) are False; the caller
    deletes the local token either way, so this never raises."""
    return response.status == 200
