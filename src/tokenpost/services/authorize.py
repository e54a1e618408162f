"""Obtaining a token: the device authorization grant, the browser flow, or app-only credentials.

Theory of operation. Starting a flow persists `WaitingForAuthorization` with the flow's own data
(device code, PKCE verifier…, encrypted), so any process sharing the store can see it and the
scheduler of `tokenpost serve` can go on polling a device flow that `token get` started. Every
poll happens under the token's flight lock after re-reading the record, and respects the flow's
`next_poll_at`: two pollers together never poll faster than RFC 8628 allows. A flow that ends
without a token (denied, expired, cancelled) restores the state it replaced, which kept serving
mail meanwhile.

Two ways in, one path. `obtain` (the CLI's `token get`) starts a flow and waits for its end.
`begin` (the web page's [Get Token]) starts the same flow and returns its prompt at once: a
device flow is then carried by the scheduler of the running `serve` (`poll_due`; `flow_started`
wakes it), a browser flow by its persisted state, which `finish_browser` completes in any process
with the address the browser ended on. `pending` shows the prompt again and `cancel` ends it.

The browser flow of `obtain` listens where the administrator's registered redirect URI points and
waits for the browser, or for the address it ended on pasted on the terminal (`browser_wait`).
The browser flow of `begin` listens nowhere: it sends the registered redirect URI as registered
(or the web page's own callback), and the address comes back through `finish_browser`.

The flow records its owner (`ports.FlowOwners`): the process that waits for it, or — for a device
flow `begin` started — the `serve` whose scheduler polls it. When that process is gone without
ending the flow (SIGKILL), or the code has expired, the flow reads as ended
(`targets.current_record`) and `poll_due` records its end. A browser flow `begin` started has no
owner: nobody has to stay alive for it, and its expiry alone ends it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Final

from tokenpost.clock import Clock
from tokenpost.errors import (
    AuthorizationEndedError,
    ClientConfigError,
    FieldProblem,
    OAuthError,
    RemoteProtocolError,
    TokenpostError,
    TransportError,
    ValidationError,
)
from tokenpost.oauth import authcode, rfc6749, rfc8628
from tokenpost.oauth.grant import TokenGrant
from tokenpost.oauth.pending import BrowserPending, DevicePending
from tokenpost.oauth.providers import Endpoints, authorization_extra_params, redirect_uri_for
from tokenpost.oauth.redirect_uri import parse_loopback_redirect, web_redirect_rule
from tokenpost.ports import (
    UNTRACKED_OWNERS,
    FlightLock,
    FlowOwners,
    HttpClient,
    RedirectListenerFactory,
    Store,
    TokenRecord,
)
from tokenpost.secret import Secret
from tokenpost.services.browser_wait import (
    HINT_AFTER_S,
    NO_BROWSER_HOOKS,
    BrowserHooks,
    RedirectWait,
)
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.flows import (
    CANCELLED,
    AddressRefusedError,
    BrowserPrompt,
    DevicePrompt,
    Prompt,
    PromptHook,
    is_pending,
    outcome,
    prompt_of,
)
from tokenpost.services.refresh import EventHook, ignore_event
from tokenpost.services.targets import (
    Target,
    flow_ended,
    load_current,
    load_target,
    oauth_settings,
    target_of,
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
    PendingFlow,
    WaitingForAuthorization,
)

__all__ = [
    "CANCELLED",
    "AddressRefusedError",
    "Authorizer",
    "BrowserPrompt",
    "DevicePrompt",
    "Prompt",
    "PromptHook",
]

log = logging.getLogger("tokenpost.authorize")

_ADDRESS: Final = Text("the address")
_GIVE_AGAIN: Final = Text(
    "give the whole address the browser shows after the sign-in, or start the authorization again"
)


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
    # Set when `begin` starts a device flow for the scheduler to poll: `serve`'s token loop
    # wakes at once instead of at the next due time it knew of (`Scheduler.wakeup`).
    flow_started: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    flows_started: int = field(default=0, repr=False)  # how many times it was set

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

    async def begin(self, setting_id: str, *, redirect_uri: str | None = None) -> Prompt | Acquired:
        """Start the provider's flow for the setting and return its prompt without waiting.

        A device flow is recorded as Waiting for authorization, owned by this process; the
        scheduler of this process (`serve`) polls it to its end (`poll_due`). A browser flow is
        recorded with its state and PKCE verifier for `finish_browser`; its redirect URI is
        `redirect_uri` (a web page's own callback, registered at the provider) or else the
        provider's registered one, sent as registered. `redirect_uri` is ignored by the other
        flows. A flow already pending and not ended is not replaced: its prompt comes back. An
        app-only provider waits for nobody: the token is obtained at once and returned.

        The token in force stays in force until the new grant is stored (issue 8's rule).

        Raises:
            ValidationError: `redirect_uri` is not an http(s) address without query or #.
            UsageError: the setting does not use OAuth 2.0.
            ClientConfigError, TransportError, RemoteProtocolError, OAuthError: the provider
                could not be used; nothing was recorded.
        """
        if redirect_uri is not None:
            rule = web_redirect_rule(redirect_uri)
            if rule is not None:
                raise ValidationError([FieldProblem("redirect_uri", rule)])
        target = await load_target(self.store, setting_id)
        endpoints = await self.resolver.resolve(target.provider)
        if target.flow is Flow.APP:
            return await self._app_only(target, endpoints)
        async with self.lock.hold(setting_id):
            record = await self._load(target)
            if isinstance(record.state, WaitingForAuthorization):
                return prompt_of(record.state.flow)
            started: tuple[PendingFlow, WaitingForAuthorization]
            if target.flow is Flow.DEVICE:
                started = await self._start_device_locked(target, endpoints, record)
            else:
                redirect = (
                    redirect_uri
                    or parse_loopback_redirect(redirect_uri_for(target.provider)).registered
                )
                started = await self._start_browser_locked(
                    target, endpoints, record, redirect, owned=False
                )
        flow = started[0]
        if isinstance(flow, DevicePending):
            self._device_started(target, flow)
            self.flows_started += 1
            self.flow_started.set()
        return prompt_of(flow)

    async def pending(self, setting_id: str) -> Prompt | None:
        """The prompt of the setting's pending flow, or None when none is pending (or it has
        ended: expired, its owner gone). Reads only.

        Raises:
            UsageError: the setting does not use OAuth 2.0.
        """
        target = await load_target(self.store, setting_id)
        state = (await self._load(target)).state
        return prompt_of(state.flow) if isinstance(state, WaitingForAuthorization) else None

    async def finish_browser(self, setting_id: str, address: str) -> Acquired:
        """Complete the setting's pending browser flow with the address the browser ended on
        (pasted, or the web page's callback URL): its `state` (and `iss`, RFC 9207) checked,
        the code exchanged with the PKCE verifier, the grant stored. Any process can do it.

        Raises:
            AddressRefusedError: the address does not finish this flow (no browser flow is
                pending, another setting's address, another address, wrong state…); nothing
                changed, a pending flow goes on.
            AuthorizationEndedError: the flow has ended (expired, error=expired_token), or the
                provider redirected with an error (access_denied…); the previous token is in
                force again.
            OAuthError, TransportError, RemoteProtocolError: the code exchange failed; the flow
                has ended and the previous token is in force again.
            UsageError: the setting does not use OAuth 2.0.
        """
        target = await load_target(self.store, setting_id)
        endpoints = await self.resolver.resolve(target.provider)
        async with self.lock.hold(setting_id):
            record = await load_current(self.store, target)
            state = record.state
            if not (
                isinstance(state, WaitingForAuthorization)
                and isinstance(state.flow, BrowserPending)
            ):
                raise await self._refusal(setting_id, address, None)
            ended = flow_ended(state, now=self.clock.now(), owners=self.owners)
            if ended is not None:
                await self._end_locked(target, record, ended)
                expired = self.clock.now() >= state.flow.expires_at
                raise AuthorizationEndedError(
                    "the authorization of {setting} has ended ({reason}): start it again",
                    setting=setting_id,
                    reason=ended,
                    error="expired_token" if expired else "abandoned",
                )
            pending = state.flow
            try:
                code = authcode.parse_pasted_redirect(
                    pending, address, what=_ADDRESS, fix=_GIVE_AGAIN
                )
            except AuthorizationEndedError as error:  # the provider's error: access_denied…
                await self._end_locked(target, record, error.text)
                raise
            except (authcode.NotRedirectAddressError, authcode.RedirectRefusedError) as refused:
                raise await self._refusal(setting_id, address, refused) from None
            return await self._redeem_locked(target, endpoints, record, pending, code)

    async def cancel(self, setting_id: str) -> None:
        """End the setting's pending flow, if any; the token it replaced is in force again.

        Raises:
            UsageError: the setting does not use OAuth 2.0.
        """
        target = await load_target(self.store, setting_id)
        async with self.lock.hold(setting_id):
            record = await load_current(self.store, target)
            if isinstance(record.state, WaitingForAuthorization):
                ended = flow_ended(record.state, now=self.clock.now(), owners=self.owners)
                await self._end_locked(target, record, ended or CANCELLED)

    async def setting_of_address(self, address: str) -> str | None:
        """The setting whose pending browser flow `address` (the address a browser ended on)
        belongs to, by its `state`; None when it belongs to none. For a callback that serves
        every setting; `finish_browser` still checks everything. Reads only."""
        state = authcode.address_state(address)
        if state is None:
            return None
        for setting in await oauth_settings(self.store):
            try:
                target = await target_of(self.store, setting)
                current = (await self._load(target)).state
            except TokenpostError:
                continue  # a damaged record or a missing provider has no flow to finish
            if (
                isinstance(current, WaitingForAuthorization)
                and isinstance(current.flow, BrowserPending)
                and current.flow.state == state
            ):
                return setting.setting_id
        return None

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
        async with self.lock.hold(target.setting_id):
            record = await self._load(target)
            pending, started = await self._start_device_locked(target, endpoints, record)
        self._device_started(target, pending)
        try:
            await on_prompt(prompt_of(pending))
            return await self._poll_until_done(target, pending, started.previous)
        except (asyncio.CancelledError, KeyboardInterrupt):
            await self._abandon(target, pending, CANCELLED)
            raise

    async def _start_device_locked(
        self, target: Target, endpoints: Endpoints, record: TokenRecord
    ) -> tuple[DevicePending, WaitingForAuthorization]:
        """Request a device code and record the flow, owned by this process. Lock held."""
        if not endpoints.device_authorization:
            raise ClientConfigError(
                "provider {provider} has no device authorization endpoint: use --flow browser",
                provider=target.provider.name,
            )
        request = rfc8628.device_authorization_request(
            endpoints.device_authorization, target.client, target.scope
        )
        response = await self.http.send(request, network=target.provider.network)
        pending = rfc8628.parse_device_authorization(response, now=self.clock.now())
        return pending, await self._start_locked(target, record, pending, owned=True)

    def _device_started(self, target: Target, pending: DevicePending) -> None:
        self.on_event("authorization_required", target.setting_id, pending.verification_uri)

    async def _poll_until_done(
        self, target: Target, mine: DevicePending, previous: Acquired | Invalid | None
    ) -> Acquired:
        while True:
            async with self.lock.hold(target.setting_id):
                # Read through the binding only: this process owns the flow, and the server's
                # answers (expired_token) end it.
                record = await load_current(self.store, target)
                state = record.state
                if not is_pending(state, mine):
                    return outcome(state, previous)
                assert isinstance(state, WaitingForAuthorization)  # noqa: S101 - is_pending
                assert isinstance(state.flow, DevicePending)  # noqa: S101 - is_pending
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
            result = rfc8628.on_poll_response(flow, response, now=now)
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
        if isinstance(result, rfc8628.KeepPolling):
            await transition(
                self.store, record, PollScheduled(result.pending), binding=target.binding
            )
            return None
        return await self._granted(target, record, result.grant)

    # -- authorization code + PKCE (RFC 6749 §4.1, 7636, 8252) ---------------------------------

    async def _browser(
        self, target: Target, endpoints: Endpoints, on_prompt: PromptHook, hooks: BrowserHooks
    ) -> Acquired:
        _authorization_endpoint(target, endpoints)
        redirect = parse_loopback_redirect(redirect_uri_for(target.provider))
        listener = await self.listeners(redirect)
        try:
            async with self.lock.hold(target.setting_id):
                record = await self._load(target)
                pending, started = await self._start_browser_locked(
                    target, endpoints, record, listener.redirect_uri, owned=True
                )
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

    async def _start_browser_locked(
        self,
        target: Target,
        endpoints: Endpoints,
        record: TokenRecord,
        redirect_uri: str,
        *,
        owned: bool,
    ) -> tuple[BrowserPending, WaitingForAuthorization]:
        """A new browser flow for `redirect_uri`, recorded (owned by this process when
        `owned`). Lock held."""
        pending = authcode.start_browser_flow(
            authorization_endpoint=_authorization_endpoint(target, endpoints),
            client_id=target.provider.client_id,
            redirect_uri=redirect_uri,
            scope=target.scope,
            now=self.clock.now(),
            issuer=endpoints.issuer,
            extra_params=authorization_extra_params(target.provider),
        )
        return pending, await self._start_locked(target, record, pending, owned=owned)

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
        except (OAuthError, RemoteProtocolError, TransportError) as error:
            await self._abandon(target, pending, error.text)
            raise
        async with self.lock.hold(target.setting_id):
            record = await load_current(self.store, target)
            if not is_pending(record.state, pending):
                return outcome(record.state, previous)
            return await self._redeem_locked(target, endpoints, record, pending, code)

    async def _redeem_locked(
        self,
        target: Target,
        endpoints: Endpoints,
        record: TokenRecord,
        pending: BrowserPending,
        code: Secret,
    ) -> Acquired:
        """Exchange the code of the pending browser flow (the record's) and store the grant; a
        failed exchange ends the flow. Lock held."""
        try:
            request = authcode.code_exchange_request(endpoints.token, target.client, pending, code)
            response = await self.http.send(request, network=target.provider.network)
            grant = rfc6749.parse_token_response(response, now=self.clock.now())
        except (OAuthError, RemoteProtocolError, TransportError) as error:
            await self._end_locked(target, record, error.text)
            raise
        return await self._granted(target, record, grant)

    async def _refusal(
        self,
        setting_id: str,
        address: str,
        refused: authcode.NotRedirectAddressError | authcode.RedirectRefusedError | None,
    ) -> AddressRefusedError:
        """Why `address` does not finish the setting's flow (`refused`: what the address check
        said; None: no browser flow is pending). Another setting's address is named as such."""
        other = await self.setting_of_address(address)
        if other is not None and other != setting_id:
            return AddressRefusedError(
                "the address belongs to the authorization of {other}, not of {setting}: finish"
                " it there",
                problem="other_setting",
                other=other,
                setting=setting_id,
            )
        if refused is None:
            return AddressRefusedError(
                "no browser authorization is pending for {setting} (its address was already"
                " used, or it was cancelled or has ended): start it again",
                problem="no_pending",
                setting=setting_id,
            )
        return AddressRefusedError(refused.text, problem=refused.problem)

    # -- shared --------------------------------------------------------------------------------

    async def _granted(self, target: Target, record: TokenRecord, grant: TokenGrant) -> Acquired:
        saved = await transition(
            self.store, record, Granted(grant, self.clock.now()), binding=target.binding
        )
        assert isinstance(saved.state, Acquired)  # noqa: S101 - Granted always yields Acquired
        self.on_event("token_acquired", target.setting_id, "")  # its log line: events.py
        return saved.state

    async def _start_locked(
        self, target: Target, record: TokenRecord, flow: PendingFlow, *, owned: bool
    ) -> WaitingForAuthorization:
        """Record the flow as pending, owned by this process when `owned`. Lock held."""
        owner = self.owners.claim() if owned else None
        host, owner_id = owner if owner is not None else (None, None)
        event = AuthorizationStarted(flow, self.clock.now(), owner_host=host, owner_id=owner_id)
        saved = await transition(self.store, record, event, binding=target.binding)
        assert isinstance(saved.state, WaitingForAuthorization)  # noqa: S101 - the table says so
        return saved.state

    async def _abandon(self, target: Target, mine: PendingFlow, reason: Text) -> None:
        """End our flow if it is still the pending one (another may have replaced it)."""
        async with self.lock.hold(target.setting_id):
            record = await load_current(self.store, target)
            if is_pending(record.state, mine):
                await self._end_locked(target, record, reason)

    async def _end_locked(self, target: Target, record: TokenRecord, reason: Text) -> None:
        await transition(self.store, record, AuthorizationEnded(reason), binding=target.binding)
        log.info("authorization of %s ended: %s", target.setting_id, reason)

    async def _load(self, target: Target) -> TokenRecord:
        """The record read through its binding and through the end of a flow (an expired flow,
        or one whose owner is gone, is replaced as if it had ended)."""
        return await load_current(self.store, target, now=self.clock.now(), owners=self.owners)


def _authorization_endpoint(target: Target, endpoints: Endpoints) -> str:
    if not endpoints.authorization:
        raise ClientConfigError(
            "provider {provider} has no authorization endpoint: use --flow device",
            provider=target.provider.name,
        )
    return endpoints.authorization
