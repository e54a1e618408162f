"""Obtaining a token: the device authorization grant, the browser flow, or app-only credentials.

Theory of operation. Starting a flow persists `WaitingForAuthorization` with the flow's own data
(device code, PKCE verifier…, encrypted), so any process sharing the store can see it and the
scheduler of `tokenpost serve` can go on polling a device flow that `token get` started. Every
poll happens under the token's flight lock after re-reading the record, and respects the flow's
`next_poll_at`: two pollers together never poll faster than RFC 8628 allows. A flow that ends
without a token (denied, expired, cancelled) restores the state it replaced, which kept serving
mail meanwhile.

The browser flow listens where the administrator's registered redirect URI points and waits for
the browser, or for the address it ended on pasted on the terminal (`browser_wait`).

The flow records its owner (`ports.FlowOwners`): the process that waits for it. When that process
is gone without ending the flow (SIGKILL), or the code has expired, the flow reads as ended
(`targets.current_record`) and `poll_due` records its end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from tokenpost.clock import Clock
from tokenpost.errors import (
    AuthorizationEndedError,
    ClientConfigError,
    OAuthError,
    RemoteProtocolError,
    TransportError,
)
from tokenpost.oauth import authcode, rfc6749, rfc8628
from tokenpost.oauth.grant import TokenGrant
from tokenpost.oauth.pending import BrowserPending, DevicePending
from tokenpost.oauth.providers import Endpoints, authorization_extra_params, redirect_uri_for
from tokenpost.oauth.redirect_uri import parse_loopback_redirect
from tokenpost.ports import (
    UNTRACKED_OWNERS,
    FlightLock,
    FlowOwners,
    HttpClient,
    RedirectListenerFactory,
    Store,
    TokenRecord,
)
from tokenpost.services.browser_wait import (
    HINT_AFTER_S,
    NO_BROWSER_HOOKS,
    BrowserHooks,
    RedirectWait,
)
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.refresh import EventHook, ignore_event
from tokenpost.services.targets import (
    Target,
    flow_ended,
    load_current,
    load_target,
    transition,
)
from tokenpost.settings.model import Flow
from tokenpost.text import Text
from tokenpost.tokens.machine import (
    AuthorizationEnded,
    AuthorizationStarted,
    Granted,
    PollScheduled,
)
from tokenpost.tokens.state import (
    Acquired,
    Invalid,
    NotAcquired,
    PendingFlow,
    TokenState,
    WaitingForAuthorization,
)

log = logging.getLogger("tokenpost.authorize")

CANCELLED: Final = Text("the authorization was cancelled")
"""The reason recorded when `token get` is interrupted (Ctrl-C, SIGTERM, SIGHUP)."""


@dataclass(frozen=True, slots=True)
class DevicePrompt:
    """What the administrator must do for a device flow (RFC 8628 §3.3)."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_at: float
    message: str | None = None


@dataclass(frozen=True, slots=True)
class BrowserPrompt:
    """The address to open in a browser (RFC 8252). `redirect_uri` is where the browser is sent
    back (the registered URI with the port listened on); `can_paste` says whether the address
    the browser ended on may be pasted instead (`BrowserHooks.pasted`)."""

    authorization_url: str
    expires_at: float
    redirect_uri: str
    can_paste: bool


Prompt = DevicePrompt | BrowserPrompt
PromptHook = Callable[[Prompt], Awaitable[None]]


@dataclass
class Authorizer:
    store: Store
    http: HttpClient
    lock: FlightLock
    clock: Clock
    resolver: EndpointResolver
    listeners: RedirectListenerFactory
    on_event: EventHook = ignore_event
    owners: FlowOwners = UNTRACKED_OWNERS
    # Seconds of silence before the browser flow's first hint; tests shorten it
    # (wiring: TOKENPOST_TEST_REDIRECT_HINT_AFTER).
    redirect_hint_after: float = HINT_AFTER_S

    async def obtain(
        self, setting_id: str, on_prompt: PromptHook, browser: BrowserHooks = NO_BROWSER_HOOKS
    ) -> Acquired:
        """Run the provider's flow for the setting until it has a token. `browser` serves the
        browser flow: pasted addresses, hints, refused pastes.

        Raises:
            UsageError: the setting does not use OAuth 2.0.
            AuthorizationEndedError: denied, expired, or cancelled; the previous state is restored.
            ClientConfigError, TransportError, RemoteProtocolError: the provider could not be used.
        """
        target = await load_target(self.store, setting_id)
        endpoints = await self.resolver.resolve(target.provider)
        if target.flow is Flow.APP:
            return await self._app_only(target, endpoints)
        if target.flow is Flow.DEVICE:
            return await self._device(target, endpoints, on_prompt)
        return await self._browser(target, endpoints, on_prompt, browser)

    async def poll_due(self, setting_id: str) -> None:
        """For the scheduler: record the end of a flow that has ended (expired, its owner gone),
        else one poll of a pending device flow if it is due; never raises for provider answers
        (they are recorded in the state)."""
        target = await load_target(self.store, setting_id)
        async with self.lock.hold(setting_id):
            record = await load_current(self.store, target)
            state = record.state
            if not isinstance(state, WaitingForAuthorization):
                return
            ended = flow_ended(state, now=self.clock.now(), owners=self.owners)
            if ended is not None:
                await self._end_locked(target, record, ended)
                return
            flow = state.flow
            if isinstance(flow, BrowserPending):
                return
            if rfc8628.seconds_until_poll(flow, self.clock.now()) > 0:
                return
            try:
                await self._poll_once(target, record, flow)
            except OAuthError:
                return  # the end of the flow is recorded and logged (`_end_locked`)

    # -- app-only ------------------------------------------------------------------------------

    async def _app_only(self, target: Target, endpoints: Endpoints) -> Acquired:
        async with self.lock.hold(target.setting_id):
            record = await self._load(target)
            request = rfc6749.client_credentials_request(
                endpoints.token, target.client, target.scope
            )
            response = await self.http.send(request, network=target.provider.network)
            grant = rfc6749.parse_token_response(response, now=self.clock.now())
            return await self._granted(target, record, grant)

    # -- device authorization grant (RFC 8628) -------------------------------------------------

    async def _device(
        self, target: Target, endpoints: Endpoints, on_prompt: PromptHook
    ) -> Acquired:
        if not endpoints.device_authorization:
            raise ClientConfigError(
                "provider {provider} has no device authorization endpoint: use --flow browser",
                provider=target.provider.name,
            )
        async with self.lock.hold(target.setting_id):
            record = await self._load(target)
            request = rfc8628.device_authorization_request(
                endpoints.device_authorization, target.client, target.scope
            )
            response = await self.http.send(request, network=target.provider.network)
            pending = rfc8628.parse_device_authorization(response, now=self.clock.now())
            started = await self._start_locked(target, record, pending)
        self.on_event("authorization_required", target.setting_id, pending.verification_uri)
        try:
            await on_prompt(
                DevicePrompt(
                    pending.user_code,
                    pending.verification_uri,
                    pending.verification_uri_complete,
                    pending.expires_at,
                    pending.message,
                )
            )
            return await self._poll_until_done(target, pending, started.previous)
        except (asyncio.CancelledError, KeyboardInterrupt):
            await self._abandon(target, pending, CANCELLED)
            raise

    async def _poll_until_done(
        self, target: Target, mine: DevicePending, previous: Acquired | Invalid | None
    ) -> Acquired:
        while True:
            async with self.lock.hold(target.setting_id):
                # Read through the binding only: this process owns the flow, and the server's
                # answers (expired_token) end it.
                record = await load_current(self.store, target)
                state = record.state
                if not _is_pending(state, mine):
                    return _outcome(state, previous)
                assert isinstance(state, WaitingForAuthorization)  # noqa: S101 - _is_pending
                assert isinstance(state.flow, DevicePending)  # noqa: S101 - _is_pending
                previous = state.previous  # refreshed meanwhile, perhaps
                wait = rfc8628.seconds_until_poll(state.flow, self.clock.now())
                if wait <= 0:
                    done = await self._poll_once(target, record, state.flow)
                    if done is not None:
                        return done
                    continue
            await self.clock.sleep(wait)

    async def _poll_once(
        self, target: Target, record: TokenRecord, flow: DevicePending
    ) -> Acquired | None:
        """One token request for a pending device flow, its outcome persisted. Lock held."""
        endpoints = await self.resolver.resolve(target.provider)
        now = self.clock.now()
        try:
            response = await self.http.send(
                rfc8628.poll_request(endpoints.token, target.client, flow),
                network=target.provider.network,
            )
            outcome = rfc8628.on_poll_response(flow, response, now=now)
        except (TransportError, RemoteProtocolError) as error:
            log.info("polling for %s failed, backing off: %s", target.setting_id, error)
            try:
                later = rfc8628.on_transport_error(flow, now=now)
            except AuthorizationEndedError as ended:
                await self._end_locked(target, record, ended.text)
                raise
            await transition(self.store, record, PollScheduled(later), binding=target.binding)
            return None
        except OAuthError as error:
            await self._end_locked(target, record, error.text)
            raise
        if isinstance(outcome, rfc8628.KeepPolling):
            await transition(
                self.store, record, PollScheduled(outcome.pending), binding=target.binding
            )
            return None
        return await self._granted(target, record, outcome.grant)

    # -- authorization code + PKCE on a loopback redirect (RFC 8252) ---------------------------

    async def _browser(
        self, target: Target, endpoints: Endpoints, on_prompt: PromptHook, hooks: BrowserHooks
    ) -> Acquired:
        if not endpoints.authorization:
            raise ClientConfigError(
                "provider {provider} has no authorization endpoint: use --flow device",
                provider=target.provider.name,
            )
        redirect = parse_loopback_redirect(redirect_uri_for(target.provider))
        listener = await self.listeners(redirect)
        try:
            pending = authcode.start_browser_flow(
                authorization_endpoint=endpoints.authorization,
                client_id=target.provider.client_id,
                redirect_uri=listener.redirect_uri,
                scope=target.scope,
                now=self.clock.now(),
                issuer=endpoints.issuer,
                extra_params=authorization_extra_params(target.provider),
            )
            async with self.lock.hold(target.setting_id):
                record = await self._load(target)
                started = await self._start_locked(target, record, pending)
            wait = RedirectWait.start(
                pending,
                listener,
                self.clock,
                hooks,
                preset=target.provider.preset,
                registered=redirect.registered,
                hint_after=self.redirect_hint_after,
            )
            try:
                await on_prompt(
                    BrowserPrompt(
                        pending.authorization_url,
                        pending.expires_at,
                        listener.redirect_uri,
                        can_paste=hooks.pasted is not None,
                    )
                )
                return await self._await_code(target, endpoints, wait, started.previous)
            except (asyncio.CancelledError, KeyboardInterrupt):
                await self._abandon(target, pending, CANCELLED)
                raise
        finally:
            await listener.close()

    async def _await_code(
        self,
        target: Target,
        endpoints: Endpoints,
        wait: RedirectWait,
        previous: Acquired | Invalid | None,
    ) -> Acquired:
        pending = wait.pending
        try:
            code = await wait.code()
            request = authcode.code_exchange_request(endpoints.token, target.client, pending, code)
            response = await self.http.send(request, network=target.provider.network)
            grant = rfc6749.parse_token_response(response, now=self.clock.now())
        except (OAuthError, RemoteProtocolError, TransportError) as error:
            await self._abandon(target, pending, error.text)
            raise
        async with self.lock.hold(target.setting_id):
            record = await load_current(self.store, target)
            if not _is_pending(record.state, pending):
                return _outcome(record.state, previous)
            return await self._granted(target, record, grant)

    # -- shared --------------------------------------------------------------------------------

    async def _granted(self, target: Target, record: TokenRecord, grant: TokenGrant) -> Acquired:
        saved = await transition(
            self.store, record, Granted(grant, self.clock.now()), binding=target.binding
        )
        assert isinstance(saved.state, Acquired)  # noqa: S101 - Granted always yields Acquired
        self.on_event("token_acquired", target.setting_id, "")  # its log line: events.py
        return saved.state

    async def _start_locked(
        self, target: Target, record: TokenRecord, flow: PendingFlow
    ) -> WaitingForAuthorization:
        """Record the flow as pending, owned by this process. Lock held."""
        owner = self.owners.claim()
        host, owner_id = owner if owner is not None else (None, None)
        event = AuthorizationStarted(flow, self.clock.now(), owner_host=host, owner_id=owner_id)
        saved = await transition(self.store, record, event, binding=target.binding)
        assert isinstance(saved.state, WaitingForAuthorization)  # noqa: S101 - the table says so
        return saved.state

    async def _abandon(self, target: Target, mine: PendingFlow, reason: Text) -> None:
        """End our flow if it is still the pending one (another may have replaced it)."""
        async with self.lock.hold(target.setting_id):
            record = await load_current(self.store, target)
            if _is_pending(record.state, mine):
                await self._end_locked(target, record, reason)

    async def _end_locked(self, target: Target, record: TokenRecord, reason: Text) -> None:
        await transition(self.store, record, AuthorizationEnded(reason), binding=target.binding)
        log.info("authorization of %s ended: %s", target.setting_id, reason)

    async def _load(self, target: Target) -> TokenRecord:
        """The record read through its binding and through the end of a flow (an expired flow,
        or one whose owner is gone, is replaced as if it had ended)."""
        return await load_current(self.store, target, now=self.clock.now(), owners=self.owners)


def _is_pending(state: TokenState, mine: PendingFlow) -> bool:
    """True while `mine` is still the flow the token waits for."""
    if not isinstance(state, WaitingForAuthorization):
        return False
    flow = state.flow
    if isinstance(flow, DevicePending) and isinstance(mine, DevicePending):
        return flow.device_code == mine.device_code
    if isinstance(flow, BrowserPending) and isinstance(mine, BrowserPending):
        return flow.state == mine.state
    return False


def _outcome(state: TokenState, previous: Acquired | Invalid | None) -> Acquired:
    """The result of our flow, which finished elsewhere: another process polled it to the end
    (a grant, or a denial), a newer flow replaced it, or it was deleted. `previous` is the token
    our flow kept in force when we last looked: finding it back means the flow ended without a
    grant."""
    restored = previous is not None and (
        state == previous
        or (
            isinstance(state, Acquired)
            and isinstance(previous, Acquired)
            and state.access_token == previous.access_token
        )
    )
    match state:
        case Acquired() if not restored:
            return state
        case Acquired() | Invalid() if restored:
            reason = Text("it ended elsewhere; the previous token is in force again")
        case NotAcquired(note=note) if note:
            reason = note
        case Invalid(reason=reason):
            pass
        case _:
            reason = Text("another authorization replaced it")
    raise AuthorizationEndedError("the authorization ended: {reason}", reason=reason)
