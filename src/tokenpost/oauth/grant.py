"""What a token endpoint grants (RFC 6749 §5.1), as tokenpost keeps it."""

from __future__ import annotations

from dataclasses import dataclass

from tokenpost.secret import Secret


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A successful token response.

    `expires_at` is absolute (epoch seconds): `now + expires_in`, or `now + ASSUMED_LIFETIME` when
    the provider sent no `expires_in` (RFC 6749 makes it only RECOMMENDED).
    """

    access_token: Secret
    expires_at: float
    refresh_token: Secret | None = None
    scope: tuple[str, ...] = ()
    token_type: str = "Bearer"  # noqa: S105 - a token type name, not a secret
    id_token: Secret | None = None
