"""The background work of `tokenpost serve`: refresh ahead of expiry, poll pending device flows.

One loop, one pass per tick: each OAuth 2.0 setting gets what it is due. Everything a pass does
goes through the same single-flight paths as the CLI, so `serve` and a concurrent `token get` or
`send` never refresh or poll the same token at once. The next tick comes at the earliest due time
of any setting, but at least every `max_tick` seconds so new settings and tokens are picked up;
a device flow started in this process (the web page's [Get Token], `Authorizer.begin`) sets
`wakeup`, and the next tick comes at once, so its first poll is on time.

A setting's state is the one the refresher holds when the store refused it, else the stored one.
While a re-authorization is pending, the token it keeps in force is refreshed on its own schedule
and the flow is polled on its own; a flow that has ended (expired, or its `token get` is gone)
is due at once, so that its end is recorded and the previous token is back in the store.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from tokenpost.clock import Clock
from tokenpost.errors import TokenpostError
from tokenpost.oauth.pending import DevicePending
from tokenpost.ports import Store
from tokenpost.services.authorize import Authorizer
from tokenpost.services.refresh import Refresher
from tokenpost.services.targets import flow_ended, load_current, oauth_settings, target_of
from tokenpost.settings.model import MailSetting
from tokenpost.tokens.policy import refresh_due_at
from tokenpost.tokens.state import TokenState, WaitingForAuthorization, in_force

log = logging.getLogger("tokenpost.scheduler")


@dataclass
class Scheduler:
    store: Store
    clock: Clock
    refresher: Refresher
    authorizer: Authorizer
    max_tick: float = 30.0
    min_tick: float = 0.2

    @property
    def wakeup(self) -> asyncio.Event:
        """Set when a flow this process must poll was started: the next tick is due now."""
        return self.authorizer.flow_started

    async def run(self) -> None:
        """Run until cancelled."""
        log.info("scheduler started")
        while True:
            self.wakeup.clear()
            wait = await self.tick()
            sleeping = asyncio.ensure_future(self.clock.sleep(wait))
            woken = asyncio.ensure_future(self.wakeup.wait())
            try:
                await asyncio.wait((sleeping, woken), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in (sleeping, woken):
                    waiting.cancel()
                await asyncio.gather(sleeping, woken, return_exceptions=True)

    async def tick(self) -> float:
        """One pass over all settings; returns the seconds until the next one is due."""
        now = self.clock.now()
        next_due = now + self.max_tick
        for setting in await oauth_settings(self.store):
            try:
                due = await self._serve_one(setting)
            except TokenpostError as error:
                log.warning("%s: %s", setting.setting_id, error)
                continue
            if due is not None:
                next_due = min(next_due, due)
        return max(self.min_tick, next_due - self.clock.now())

    async def _serve_one(self, setting: MailSetting) -> float | None:
        """Do what the setting is due for; return when it is next due (None: nothing pending)."""
        due = await self._next_due(setting)
        if due is None or due > self.clock.now():
            return due
        setting_id = setting.setting_id
        state = await self._state(setting)
        if in_force(state) is not None:
            await self.refresher.refresh_if_due(setting_id)
        if (
            isinstance(state, WaitingForAuthorization)
            and self.refresher.held_state(setting_id) is None
        ):
            await self.authorizer.poll_due(setting_id)
        return await self._next_due(setting)

    async def _state(self, setting: MailSetting) -> TokenState:
        """The held state, else the stored one read through its binding only: a flow that has
        ended still reads as Waiting here, so that `poll_due` records its end."""
        held = self.refresher.held_state(setting.setting_id)
        if held is not None:
            return held
        target = await target_of(self.store, setting)
        return (await load_current(self.store, target)).state

    async def _next_due(self, setting: MailSetting) -> float | None:
        """When the setting's token next needs work: a refresh, a poll, or an expiry."""
        state = await self._state(setting)
        now = self.clock.now()
        dues: list[float] = []
        token = in_force(state)
        if token is not None:
            dues.append(refresh_due_at(token, self.refresher.margin))
        held = self.refresher.held_state(setting.setting_id) is not None
        if isinstance(state, WaitingForAuthorization) and not held:
            flow = state.flow
            if flow_ended(state, now=now, owners=self.authorizer.owners) is not None:
                dues.append(now)
            elif isinstance(flow, DevicePending):
                dues.append(flow.next_poll_at)
            else:
                dues.append(flow.expires_at)
        return min(dues) if dues else None
