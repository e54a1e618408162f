"""Fresh access tokens, with at most one refresh in flight per token.

Theory of operation. A caller asks for a setting's access token. If the stored one is usable
and not yet due, it is returned without locking. Otherwise the caller takes the token's flight
lock (coroutines and processes sharing the home), re-reads the record, and refreshes only if the
token is still due: everyone who waited behind the lock finds the new token and returns it, so N
concurrent callers cause one request at the token endpoint.

The new grant is persisted (compare-and-set) before its access token is returned: a rotated
refresh token is never used before it is on disk, and the old one is never presented again
(RFC 9700 §4.14 replay detection would revoke the whole grant).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from tokenpost.clock import Clock
from tokenpost.errors import (
    ClientConfigError,
    GrantInvalidError,
    OAuthError,
    OperationError,
    RemoteProtocolError,
    TokenpostError,
    TransportError,
)
from tokenpost.oauth import rfc6749
from tokenpost.oauth.grant import TokenGrant
from tokenpost.oauth.http import HttpRequest
from tokenpost.ports import FlightLock, HttpClient, Store, TokenRecord
from tokenpost.secret import Secret
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.targets import Target, load_current, load_target, transition
from tokenpost.settings.model import Flow
from tokenpost.tokens.machine import GrantRevoked, Refreshed, RefreshFailed
from tokenpost.tokens.policy import (
    DEFAULT_REFRESH_MARGIN,
    is_usable,
    needs_refresh,
    retry_delay,
)
from tokenpost.tokens.state import Acquired, Invalid, WaitingForAuthorization

log = logging.getLogger("tokenpost.refresh")

# (event name, setting id, detail: a string, a Text or an error, shown in the reader's language)
EventHook = Callable[[str, str, object], None]


def ignore_event(event: str, setting_id: str, detail: object) -> None:
    """The default EventHook: nobody is listening."""
    del event, setting_id, detail


class TokenUnavailableError(OperationError):
    """The setting has no usable token: not acquired, waiting, or invalid."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An access token and when the provider issued it (a mail server's refusal of a token
    issued moments ago is not cured by refreshing it)."""

    value: Secret
    obtained_at: float


@dataclass
class Refresher:
    store: Store
    http: HttpClient
    lock: FlightLock
    clock: Clock
    resolver: EndpointResolver
    margin: float = DEFAULT_REFRESH_MARGIN
    on_event: EventHook = ignore_event

    async def access_token(self, setting_id: str) -> Secret:
        """A usable access token for the setting, refreshed first when due.

        Raises:
            TokenUnavailableError: the token is not acquired or became invalid.
            TransportError, TransientOAuthError: refreshing failed for now and the stored token
                has expired (while it is still usable, it is returned despite the failure).
        """
        return (await self.current_token(setting_id)).value

    async def current_token(self, setting_id: str) -> AccessToken:
        """`access_token` with the time the token was issued. Raises as `access_token`."""
        return await self._token(setting_id, rejected=None)

    async def renew(self, setting_id: str, rejected: Secret) -> AccessToken:
        """A mail server refused `rejected`: refresh now, unless another caller already
        replaced it (then its successor is returned). Raises as `access_token`; after a
        transient refresh failure the rejected token itself comes back while it is usable."""
        return await self._token(setting_id, rejected=rejected)

    async def _token(self, setting_id: str, rejected: Secret | None) -> AccessToken:
        target = await load_target(self.store, setting_id)
        record = await load_current(self.store, target)
        state = record.state
        if isinstance(state, Acquired) and not self._due(state, rejected):
            return AccessToken(state.access_token, state.obtained_at)
        async with self.lock.hold(setting_id):
            record = await load_current(self.store, target)
            state = record.state
            if not isinstance(state, Acquired):
                raise TokenUnavailableError(_unavailable(setting_id, record))
            if not self._due(state, rejected):
                return AccessToken(state.access_token, state.obtained_at)
            return await self._refresh_locked(target, record, state)

    async def refresh_if_due(self, setting_id: str) -> None:
        """For the scheduler: refresh when due; failures are recorded in the state, not raised."""
        try:
            await self.access_token(setting_id)
        except TokenUnavailableError:
            return
        except TokenpostError as error:
            log.warning("refresh of %s failed: %s", setting_id, error)

    def _due(self, state: Acquired, rejected: Secret | None = None) -> bool:
        if rejected is not None and state.access_token == rejected:
            return True
        return needs_refresh(state, self.clock.now(), self.margin)

    async def _refresh_locked(
        self, target: Target, record: TokenRecord, state: Acquired
    ) -> AccessToken:
        now = self.clock.now()
        try:
            grant = await self._request_grant(target, state, now)
        except (GrantInvalidError, ClientConfigError) as error:
            # The grant is gone, or the client can no longer use it: only a new authorization
            # (after fixing the provider settings, for a client error) brings a token back.
            await self._invalidate(target, record, str(error))
            raise TokenUnavailableError(f"{target.setting_id}: {error}") from error
        except (OAuthError, TransportError, RemoteProtocolError) as error:
            # Anything else the provider or the network did may pass: keep the token, retry.
            return await self._failed(target, record, state, error)
        await transition(self.store, record, Refreshed(grant, now), binding=target.binding)
        self.on_event("token_refreshed", target.setting_id, "")  # its log line: events.py
        return AccessToken(grant.access_token, now)

    async def _request_grant(self, target: Target, state: Acquired, now: float) -> TokenGrant:
        endpoints = await self.resolver.resolve(target.provider)
        request: HttpRequest
        if target.flow is Flow.APP:
            request = rfc6749.client_credentials_request(
                endpoints.token, target.client, target.scope
            )
        elif state.refresh_token is None:
            raise GrantInvalidError(
                "the provider gave no refresh token and the access token expired: "
                "obtain the token again",
                error="no_refresh_token",
            )
        else:
            request = rfc6749.refresh_request(
                endpoints.token, target.client, state.refresh_token, target.scope
            )
        response = await self.http.send(request, network=target.provider.network)
        return rfc6749.parse_token_response(response, now=now)

    async def _invalidate(self, target: Target, record: TokenRecord, reason: str) -> None:
        await transition(
            self.store, record, GrantRevoked(reason, self.clock.now()), binding=target.binding
        )
        self.on_event("token_invalid", target.setting_id, reason)  # its log line: events.py

    async def _failed(
        self, target: Target, record: TokenRecord, state: Acquired, error: TokenpostError
    ) -> AccessToken:
        """A transient failure: keep the token, schedule a retry, use it while it lasts."""
        now = self.clock.now()
        retry_at = now + retry_delay(state.failures)
        await transition(
            self.store, record, RefreshFailed(str(error), retry_at, now), binding=target.binding
        )
        if is_usable(state, now):
            log.warning("refresh of %s failed, retrying later: %s", target.setting_id, error)
            return AccessToken(state.access_token, state.obtained_at)
        raise error  # the caller reports it (`refresh_if_due` logs it): one line per failure


def _unavailable(setting_id: str, record: TokenRecord) -> str:
    state = record.state
    if isinstance(state, Invalid):
        return f"the token of {setting_id} is invalid: {state.reason}"
    if isinstance(state, WaitingForAuthorization):
        return f"the token of {setting_id} is waiting for authorization"
    return f"{setting_id} has no token: run 'tokenpost token get {setting_id}'"
