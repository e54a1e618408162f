"""RFC 8628: OAuth 2.0 Device Authorization Grant (client side)."""

from __future__ import annotations

from dataclasses import dataclass

from tokenpost.secret import Secret


@dataclass(frozen=True, slots=True)
class DevicePending:
    """A device authorization in progress; persisted so any process can go on polling it.

    `interval` only grows (RFC 8628 §3.5: +5 s on slow_down for this and all later polls);
    `next_poll_at` is when the next token request may be sent; past `expires_at`, stop.
    """

    device_code: Secret
    user_code: str
    verification_uri: str
    expires_at: float
    interval: float
    next_poll_at: float
    verification_uri_complete: str | None = None
    message: str | None = None
