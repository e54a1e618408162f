"""OAuth 2.0 error codes: which failure each means and what the administrator should do.

The codes of RFC 6749 §5.2 (token endpoint) and §4.1.2.1 (authorization redirect), RFC 8628 §3.5
(device flow), OpenID Connect Core §3.1.2.6, Microsoft's `authorization_declined` and Google's
`admin_policy_enforced`. The class decides what happens to the token (`errors`: a transient
failure keeps it, an invalid grant ends it, a configuration error waits for the administrator);
the advice is a whole sentence, so that it translates as one, and names the fix where there is
one. Only the code is looked at: `error_description` texts change without notice (AADSTS).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from tokenpost.errors import (
    AuthorizationEndedError,
    ClientConfigError,
    GrantInvalidError,
    OAuthError,
    TransientOAuthError,
)
from tokenpost.text import Text

TEMPORARY: Final = Text("a temporary problem at the provider; try again later")
_AUTHORIZE_AGAIN: Final = Text("obtain the token again (tokenpost token get)")
_DENIED: Final = Text(
    "the authorization was denied; to try again, run tokenpost token get and approve the access"
)
UNKNOWN: Final = Text(
    "see the provider's description; check the provider settings and the app registration"
)

# error code → (class, what the administrator should do). Codes not listed are plain OAuthError.
_ERRORS: Final[Mapping[str, tuple[type[OAuthError], Text]]] = MappingProxyType(
    {
        "temporarily_unavailable": (TransientOAuthError, TEMPORARY),
        "server_error": (TransientOAuthError, TEMPORARY),
        "invalid_grant": (GrantInvalidError, _AUTHORIZE_AGAIN),
        "consent_required": (
            GrantInvalidError,
            Text("consent is required; obtain the token again (tokenpost token get)"),
        ),
        "interaction_required": (
            GrantInvalidError,
            Text("sign-in is required; obtain the token again (tokenpost token get)"),
        ),
        "login_required": (
            GrantInvalidError,
            Text("sign-in is required; obtain the token again (tokenpost token get)"),
        ),
        "account_selection_required": (GrantInvalidError, _AUTHORIZE_AGAIN),
        # Google: a Workspace administrator restricted the app (protocols.md §2.5, §6).
        "admin_policy_enforced": (
            GrantInvalidError,
            Text(
                "an administrator restricted this app; ask them, then obtain the token again "
                "(tokenpost token get)"
            ),
        ),
        # Microsoft: a public client needs "Allow public client flows" (protocols.md §1.8).
        "invalid_client": (
            ClientConfigError,
            Text(
                "check the provider's client ID and secret; for a Microsoft public client "
                'enable "Allow public client flows" and configure no secret '
                "(AADSTS7000218 / AADSTS700025)"
            ),
        ),
        "unauthorized_client": (
            ClientConfigError,
            Text(
                "the app registration does not allow this flow; check its settings or choose "
                "another --flow"
            ),
        ),
        "invalid_scope": (
            ClientConfigError,
            Text(
                "check the provider's scopes; Google refuses Gmail scopes in the device flow, "
                "use --flow browser"
            ),
        ),
        "unsupported_grant_type": (
            ClientConfigError,
            Text("the provider does not support this flow; choose another --flow"),
        ),
        "invalid_request": (
            ClientConfigError,
            Text("check the provider settings (client ID, tenant, endpoints, scopes)"),
        ),
        "access_denied": (AuthorizationEndedError, _DENIED),
        "authorization_declined": (AuthorizationEndedError, _DENIED),
        "expired_token": (
            AuthorizationEndedError,
            Text(
                "the code expired before the authorization was completed; start again with "
                "tokenpost token get and finish within the time shown"
            ),
        ),
        "bad_verification_code": (
            AuthorizationEndedError,
            Text(
                "the provider did not recognise the device code; start again with "
                "tokenpost token get"
            ),
        ),
    }
)


def classify(code: str) -> tuple[type[OAuthError], Text]:
    """The error class and the advice for `code`; a plain `OAuthError` for a code not listed."""
    return _ERRORS.get(code, (OAuthError, UNKNOWN))


def action_for(code: str) -> Text | None:
    """What the administrator should do about `code`; None for a code not listed."""
    entry = _ERRORS.get(code)
    return None if entry is None else entry[1]
