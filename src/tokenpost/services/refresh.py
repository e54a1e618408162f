"""Fresh access tokens, with at most one refresh in flight per token.

Theory of operation. A caller asks for a setting's access token. If the token in force is usable
and not yet due, it is returned without locking. Otherwise the caller takes the setting's turn in
this process, then the token's flight lock (coroutines and processes sharing the home), re-reads
the record, and refreshes only if the token is still due: everyone who waited behind the lock
finds the new token and returns it, so N concurrent callers cause one request at the token
endpoint. A token that is due but still usable does not make its caller wait long: when another
process keeps the lock for more than `usable_wait` seconds, the usable token is returned.

The token in force is the Acquired state, or the Acquired `previous` of a pending
re-authorization (`tokens.state.in_force`): it serves mail and is refreshed until the new grant
arrives.

The new grant is persisted (compare-and-set) before its access token is returned: a rotated
refresh token is never used before it is stored, and the old one is never presented again
(RFC 9700 §4.14 replay detection would revoke the whole grant). When the store refuses the write,
the new state is held in memory instead (`holdings`): it is this process's token for the setting
from then on, its flight lock stays taken, and it is written as soon as the store takes it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenpost.clock import Clock
from tokenpost.errors import (
    ClientConfigError,
    ConflictError,
    FlightLockBusyError,
    GrantInvalidError,
    OAuthError,
    OperationError,
    RemoteProtocolError,
    StoreError,
    TokenpostError,
    TransportError,
)
from tokenpost.oauth import rfc6749
from tokenpost.oauth.grant import TokenGrant
from tokenpost.oauth.http import HttpRequest
from tokenpost.ports import UNTRACKED_OWNERS, FlightLock, FlowOwners, HttpClient, Store, TokenRecord
from tokenpost.secret import Secret
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.holdings import EXIT_GRACE, STORE_RETRY_CAP, STORE_RETRY_FIRST, Holdings
from tokenpost.services.targets import Target, load_current, load_target
from tokenpost.settings.model import Flow
from tokenpost.text import as_text
from tokenpost.tokens.machine import GrantRevoked, Refreshed, RefreshFailed, TokenEvent, apply
from tokenpost.tokens.policy import (
    DEFAULT_REFRESH_MARGIN,
    is_usable,
    needs_refresh,
    retry_delay,
)
from tokenpost.tokens.state import Acquired, Invalid, TokenState, WaitingForAuthorization, in_force

log = logging.getLogger("tokenpost.refresh")

# (event name, setting id, detail: a string, a Text or an error, shown in the reader's language)
EventHook = Callable[[str, str, object], None]

USABLE_WAIT: float = 5.0
"""Seconds a caller whose token is due but still usable waits for another process's lock."""


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


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What one refresh attempt decided: the event to record and the token to hand out (None:
    raise `error` once the event is recorded)."""

    event: TokenEvent
    token: Acquired | None
    error: TokenpostError | None = None


@dataclass
class Refresher:
    store: Store
    http: HttpClient
    lock: FlightLock
    clock: Clock
    resolver: EndpointResolver
    margin: float = DEFAULT_REFRESH_MARGIN
    on_event: EventHook = ignore_event
    owners: FlowOwners = UNTRACKED_OWNERS
    store_retry: tuple[float, float] = (STORE_RETRY_FIRST, STORE_RETRY_CAP)
    usable_wait: float = USABLE_WAIT
    _holdings: Holdings = field(init=False, repr=False)

    def __post_init__(self) -> None:
        first, cap = self.store_retry
        self._holdings = Holdings(self.store, self._notify, retry_first=first, retry_cap=cap)

    def _notify(self, event: str, setting_id: str, detail: object) -> None:
        # Looked up at each call: `on_event` may be replaced after construction.
        self.on_event(event, setting_id, detail)

    async def access_token(self, setting_id: str) -> Secret:
        """A usable access token for the setting, refreshed first when due.

        Raises:
            TokenUnavailableError: the token is not acquired or became invalid.
            TransportError, TransientOAuthError: refreshing failed for now and the token has
                expired (while it is still usable, it is returned despite the failure).
            FlightLockBusyError: another process kept the token locked and the token in force
                here has expired.
        """
        return (await self.current_token(setting_id)).value

    async def current_token(self, setting_id: str) -> AccessToken:
        """`access_token` with the time the token was issued. Raises as `access_token`."""
        token = await self._token(setting_id, rejected=None)
        return AccessToken(token.access_token, token.obtained_at)

    async def renew(self, setting_id: str, rejected: Secret) -> AccessToken:
        """A mail server refused `rejected`: refresh now, unless another caller already
        replaced it (then its successor is returned). Raises as `access_token`; after a
        transient refresh failure the rejected token itself comes back while it is usable."""
        token = await self._token(setting_id, rejected=rejected)
        return AccessToken(token.access_token, token.obtained_at)

    async def refresh_now(self, setting_id: str) -> Acquired:
        """Refresh the token in force now, due or not (`token refresh`), through the same
        single flight: if another caller replaced it meanwhile, that successor is the result.

        Raises:
            TokenUnavailableError: there is no token to refresh, or the grant is gone.
            TransportError, OAuthError, RemoteProtocolError: refreshing failed (the token is
                kept and retried later).
        """
        current = await self.token_in_force(setting_id)
        return await self._token(setting_id, rejected=current.access_token, strict=True)

    async def token_in_force(self, setting_id: str) -> Acquired:
        """The token in force as this process knows it, without refreshing or locking.

        Raises:
            TokenUnavailableError: the setting has no token in force.
        """
        held = self._holdings.get(setting_id)
        if held is not None:
            state = held.state
        else:
            target = await load_target(self.store, setting_id)
            state = (await self._load(target)).state
        token = in_force(state)
        if token is None:
            raise _unavailable(setting_id, state)
        return token

    async def refresh_if_due(
        self, setting_id: str, *, known: tuple[Target, Acquired] | None = None
    ) -> Acquired | None:
        """For the scheduler: refresh when due; failures are recorded in the state, not raised.
        Returns the token in force afterwards, None when refreshing failed or there is none.
        `known`: the setting's target and token as the caller read them (the scheduler's plan),
        so they are not read again before the flight lock; under it the record is read as
        always, so a caller's stale reading costs nothing but the lock."""
        try:
            return await self._token(setting_id, rejected=None, known=known)
        except TokenUnavailableError:
            return None
        except TokenpostError as error:
            log.warning("refresh of %s failed: %s", setting_id, error)
            return None

    def held_state(self, setting_id: str) -> TokenState | None:
        """The state this process holds for the setting because the store refused it, if any:
        it is the setting's current state here, ahead of the stored record."""
        held = self._holdings.get(setting_id)
        return None if held is None else held.state

    def held_ids(self) -> list[str]:
        """The settings whose state this process holds (`held_state`)."""
        return self._holdings.held_ids()

    async def write_held(self) -> None:
        """Try now to write every held state (the writer tasks also retry on their own)."""
        await self._holdings.write_all()

    async def close(self, grace: float = EXIT_GRACE) -> list[str]:
        """Before the process ends: try to write what is held for up to `grace` seconds, then
        let go of it (releasing its flight locks). Returns the settings whose new token could
        not be saved; each is logged at ERROR with the fix."""
        return await self._holdings.close(grace)

    # -- one token -----------------------------------------------------------------------------

    async def _token(
        self,
        setting_id: str,
        rejected: Secret | None,
        *,
        strict: bool = False,
        known: tuple[Target, Acquired] | None = None,
    ) -> Acquired:
        target: Target | None = None
        serving: Acquired | None = None
        if self._holdings.get(setting_id) is None:
            if known is None:
                target = await load_target(self.store, setting_id)
                serving = in_force((await self._load(target)).state)
            else:
                target, serving = known
            if serving is not None and not self._due(serving, rejected):
                return serving
        async with self._holdings.turn(setting_id):
            held = self._holdings.get(setting_id)
            if held is not None:
                return await self._refresh_held(held.target, held.state, rejected, strict=strict)
            if target is None:  # a hold ended while this caller waited for its turn
                target = await load_target(self.store, setting_id)
            return await self._refresh_stored(target, serving, rejected, strict=strict)

    async def _refresh_stored(
        self, target: Target, seen: Acquired | None, rejected: Secret | None, *, strict: bool
    ) -> Acquired:
        """Refresh the stored token if it is still due once the flight lock is held. `seen` is
        the token in force as read before: while it is usable, another process's lock is not
        waited for long."""
        async with contextlib.AsyncExitStack() as stack:
            patient = rejected is not None or seen is None or not self._usable(seen)
            try:
                wait = None if patient else self.usable_wait
                await stack.enter_async_context(self.lock.hold(target.setting_id, timeout=wait))
            except FlightLockBusyError:
                if patient or seen is None:
                    raise
                log.debug(
                    "%s: the flight lock is busy; the usable token is used", target.setting_id
                )
                return seen
            record = await self._load(target)
            serving = in_force(record.state)
            if serving is None:
                raise _unavailable(target.setting_id, record.state)
            if not self._due(serving, rejected):
                return serving
            outcome = await self._refresh(target, serving, strict=strict)
            state = apply(record.state, outcome.event)
            try:
                await self.store.save_token(
                    target.setting_id,
                    state,
                    binding=target.binding,
                    expected_version=record.version,
                )
            except ConflictError:
                raise
            except StoreError as error:
                # The store refused: keep the state (and the flight lock) instead of losing it.
                self._holdings.hold(target, record, state, stack.pop_all(), error)
            return self._report(target.setting_id, outcome, state)

    async def _refresh_held(
        self, target: Target, state: TokenState, rejected: Secret | None, *, strict: bool
    ) -> Acquired:
        """Refresh the held token when due; its successor is written or held in its turn. The
        flight lock is already held (by the hold)."""
        serving = in_force(state)
        if serving is None:
            raise _unavailable(target.setting_id, state)
        if not self._due(serving, rejected):
            return serving
        outcome = await self._refresh(target, serving, strict=strict)
        successor = apply(state, outcome.event)
        held = self._holdings.get(target.setting_id)
        if held is not None:
            await self._holdings.update(held, successor)
        return self._report(target.setting_id, outcome, successor)

    async def _refresh(self, target: Target, serving: Acquired, *, strict: bool) -> _Outcome:
        """Ask the provider; classify the answer. Sends one request, records nothing."""
        now = self.clock.now()
        try:
            grant = await self._request_grant(target, serving, now)
        except (GrantInvalidError, ClientConfigError) as error:
            # The grant is gone, or the client can no longer use it: only a new authorization
            # (after fixing the provider settings, for a client error) brings a token back.
            return _Outcome(
                GrantRevoked(as_text(error), now),
                None,
                TokenUnavailableError(
                    "{setting}: {reason}", setting=target.setting_id, reason=error
                ),
            )
        except (OAuthError, TransportError, RemoteProtocolError) as error:
            # Anything else the provider or the network did may pass: keep the token, retry.
            retry_at = now + retry_delay(serving.failures)
            keep = serving if is_usable(serving, now) and not strict else None
            return _Outcome(RefreshFailed(as_text(error), retry_at, now), keep, error)
        return _Outcome(Refreshed(grant, now), None)

    def _report(self, setting_id: str, outcome: _Outcome, state: TokenState) -> Acquired:
        """Events and logs of a recorded outcome (stored or held); the token to hand out."""
        match outcome.event:
            case Refreshed():
                self.on_event("token_refreshed", setting_id, "")  # its log line: events.py
                token = in_force(state)
                if token is not None:
                    return token
            case GrantRevoked(reason=reason):
                self.on_event("token_invalid", setting_id, reason)  # its log line: events.py
            case RefreshFailed(reason=reason):
                if outcome.token is not None:
                    log.warning("refresh of %s failed, retrying later: %s", setting_id, reason)
                    return outcome.token
                # Raised below: the caller reports it (`refresh_if_due` logs it), one line each.
        raise outcome.error or _unavailable(setting_id, state)

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

    async def _load(self, target: Target) -> TokenRecord:
        return await load_current(self.store, target, now=self.clock.now(), owners=self.owners)

    def _due(self, state: Acquired, rejected: Secret | None = None) -> bool:
        if rejected is not None and state.access_token == rejected:
            return True
        return needs_refresh(state, self.clock.now(), self.margin)

    def _usable(self, state: Acquired) -> bool:
        return is_usable(state, self.clock.now())


def _unavailable(setting_id: str, state: TokenState) -> TokenUnavailableError:
    """Why the setting has no token in force, with what to do."""
    if isinstance(state, Invalid):
        return TokenUnavailableError(
            "the token of {setting} is invalid: {reason}; obtain it again with"
            " 'tokenpost token get {setting}'",
            setting=setting_id,
            reason=state.reason,
        )
    if isinstance(state, WaitingForAuthorization):
        if isinstance(state.previous, Invalid):
            return TokenUnavailableError(
                "the token of {setting} is invalid ({reason}) and its new authorization is still"
                " pending: complete it, or run 'tokenpost token get {setting}' again",
                setting=setting_id,
                reason=state.previous.reason,
            )
        return TokenUnavailableError(
            "the token of {setting} is waiting for authorization: complete it, or run"
            " 'tokenpost token get {setting}' again",
            setting=setting_id,
        )
    return TokenUnavailableError(
        "{setting} has no token: run 'tokenpost token get {setting}'", setting=setting_id
    )
