"""Authorization code grant with PKCE on a loopback redirect (RFC 6749 §4.1, 7636, 8252, 9207)."""

from __future__ import annotations

from dataclasses import dataclass

from tokenpost.secret import Secret


@dataclass(frozen=True, slots=True)
class BrowserPending:
    """An authorization-code flow waiting for the browser to come back to the loopback redirect.

    `state` and `verifier` are secrets (CSRF binding and PKCE, RFC 7636); `issuer`, when known,
    is what the redirect's `iss` must equal (RFC 9207).
    """

    authorization_url: str
    redirect_uri: str
    state: Secret
    verifier: Secret
    expires_at: float
    issuer: str | None = None
