"""Deleting a token: revoke at the provider when it can (best effort), always forget it locally.

The device manual's [Delete]: afterwards the state reads Not acquired, whatever the provider said.
Entra has no RFC 7009 endpoint (protocols.md §1.1): there, deleting is local only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tokenpost.clock import Clock
from tokenpost.errors import TokenpostError
from tokenpost.oauth import rfc7009
from tokenpost.ports import FlightLock, HttpClient, Store
from tokenpost.secret import Secret
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.refresh import EventHook, ignore_event
from tokenpost.services.targets import Target, load_target, transition
from tokenpost.text import Text
from tokenpost.tokens.machine import Deleted
from tokenpost.tokens.state import Acquired, NotAcquired, TokenState, WaitingForAuthorization

REVOKE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """`revoked`: True revoked, False the provider refused or failed, None nothing to revoke or
    no revocation endpoint. `detail` says which, for the administrator."""

    revoked: bool | None
    detail: Text


@dataclass
class Deleter:
    store: Store
    http: HttpClient
    lock: FlightLock
    clock: Clock
    resolver: EndpointResolver
    on_event: EventHook = ignore_event

    async def delete(self, setting_id: str) -> DeleteResult:
        """Revoke (best effort) and remove the setting's token. Raises only for a setting
        that does not exist or does not use OAuth 2.0."""
        target = await load_target(self.store, setting_id)
        async with self.lock.hold(setting_id):
            record = await self.store.load_token(setting_id)
            result = await self._revoke(target, record.state)
            if not isinstance(record.state, NotAcquired):
                await transition(self.store, record, Deleted(), binding=target.binding)
        self.on_event("token_deleted", setting_id, result.detail)  # its log line: events.py
        return result

    async def revoke(self, target: Target, state: TokenState) -> DeleteResult:
        """Revoke the token `state` holds at `target`'s provider (best effort, never raises for
        the provider's answer), without touching the store: for tokens a settings change has
        already discarded. `target` must be what the token was obtained for."""
        return await self._revoke(target, state)

    async def _revoke(self, target: Target, state: TokenState) -> DeleteResult:
        token, hint = _revocable(state)
        if token is None:
            return DeleteResult(None, Text("no token to revoke"))
        try:
            endpoints = await self.resolver.resolve(target.provider)
            if not endpoints.revocation:
                return DeleteResult(None, Text("the provider has no revocation endpoint"))
            request = rfc7009.revocation_request(endpoints.revocation, target.client, token, hint)
            response = await self.http.send(
                request, network=target.provider.network, timeout=REVOKE_TIMEOUT
            )
        except TokenpostError as error:
            return DeleteResult(False, Text("revocation failed: {reason}", reason=error))
        if rfc7009.revocation_succeeded(response):
            return DeleteResult(True, Text("revoked at the provider"))
        return DeleteResult(
            False,
            Text("the provider answered HTTP {status} to revocation", status=response.status),
        )


Hint = Literal["refresh_token", "access_token"]


def _revocable(state: TokenState) -> tuple[Secret | None, Hint]:
    """The token to revoke: the refresh token when there is one (revoking it ends the grant)."""
    if isinstance(state, WaitingForAuthorization) and state.previous is not None:
        state = state.previous
    if isinstance(state, Acquired):
        if state.refresh_token is not None:
            return state.refresh_token, "refresh_token"
        return state.access_token, "access_token"
    # Not acquired and Invalid hold no token: nothing left to revoke.
    return None, "refresh_token"
