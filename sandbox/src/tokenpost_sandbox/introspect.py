"""RFC 7662 token introspection against the sandbox authorization server, as a mail server does it.

The sandbox mail servers (SMTP here, Dovecot in the tests) are resource servers: they accept a
bearer token only if the authorization server says, at that moment, that it is active and belongs
to the account being logged in to. Nothing is cached, so a revoked token fails at once.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from tokenpost.errors import RemoteProtocolError, TransportError
from tokenpost.secret import Secret

READY_FILE: Final = "ready.json"
INTROSPECT_PATH: Final = "/introspect"
_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class AuthserverReady:
    """What a resource server needs from the authorization server's ready.json."""

    issuer: str
    ca_file: Path
    client_id: str
    client_secret: Secret

    @classmethod
    def load(cls, directory: Path) -> AuthserverReady:
        """Read DIR/ready.json as written by ``python -m tokenpost_sandbox authserver``."""
        raw = json.loads((directory / READY_FILE).read_text(encoding="utf-8"))
        mailserver = raw["clients"]["mailserver"]
        return cls(
            issuer=raw["issuer"],
            ca_file=Path(raw["ca_file"]),
            client_id=mailserver["id"],
            client_secret=Secret(mailserver["secret"]),
        )

    @property
    def introspection_url(self) -> str:
        return self.issuer + INTROSPECT_PATH


def introspection_client(authserver: AuthserverReady) -> httpx.AsyncClient:
    """An HTTP client that trusts only the sandbox CA (and holds no answers between calls)."""
    context = ssl.create_default_context(cafile=str(authserver.ca_file))
    return httpx.AsyncClient(verify=context, timeout=_TIMEOUT)


async def introspect_username(
    authserver: AuthserverReady, token: Secret, *, http: httpx.AsyncClient | None = None
) -> str | None:
    """The account an active access token belongs to, or None (inactive, unknown, userless).

    Raises:
        TransportError: the authorization server could not be reached.
        RemoteProtocolError: it answered with something other than an RFC 7662 response.
    """
    if http is None:
        async with introspection_client(authserver) as own:
            return await introspect_username(authserver, token, http=own)
    try:
        response = await http.post(
            authserver.introspection_url,
            data={"token": token.reveal(), "token_type_hint": "access_token"},
            auth=(authserver.client_id, authserver.client_secret.reveal()),
        )
    except httpx.HTTPError as exc:
        raise TransportError(f"introspection failed: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise RemoteProtocolError(f"introspection answered HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise RemoteProtocolError("introspection answered non-JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("active"), bool):
        raise RemoteProtocolError("introspection answer has no boolean 'active'")
    # RFC 7662 §2.2: only an access token may authorize mail; a refresh token may be active too.
    if body["active"] is not True or body.get("token_type") not in (None, "Bearer"):
        return None
    username = body.get("username")
    return username if isinstance(username, str) and username else None


async def check_token(
    authserver: AuthserverReady,
    user: str,
    token: Secret,
    *,
    http: httpx.AsyncClient | None = None,
) -> bool:
    """True when `token` is an active access token of `user` (compared case-insensitively).

    Raises:
        TransportError: the authorization server could not be reached.
        RemoteProtocolError: it answered with something other than an RFC 7662 response.
    """
    username = await introspect_username(authserver, token, http=http)
    return username is not None and username.casefold() == user.casefold()
