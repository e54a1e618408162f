"""The data of a pending authorization, as the token state persists it.

Kept apart from the flow logic (`rfc8628`, `authcode`) so that reading a token's state — which
every `token status` does — does not import the protocol machinery.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenpost.secret import Secret


@dataclass(frozen=True, slots=True)
class DevicePending:
    """A device authorization in progress; persisted so any process can go on polling it.

    `interval` only grows (RFC 8628 §3.5: +5 s on slow_down for this and all later polls);
    `next_poll_at` is when the next token request may be sent; past `expires_at`, stop.
    `backoff` is the current wait after transient faults (0 when there were none since the last
    ordinary answer); it never changes `interval`.
    """

    device_code: Secret
    user_code: str
    verification_uri: str
    expires_at: float
    interval: float
    next_poll_at: float
    verification_uri_complete: str | None = None
    message: str | None = None
    backoff: float = 0.0


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
