"""The background work of `tokenpost serve`: refresh ahead of expiry, poll pending device flows.

One loop, one pass per tick: each OAuth 2.0 setting gets what it is due. The due times come from
a plan: the settings, providers and tokens read once each, however many settings there are, with
each setting's due time sorted; the plan is read again only when the store's revision changed
(`Store.revision`), so a pass with nothing due costs the same at any size. What the scheduler
refreshed itself it moves in the plan; after such moves the plan is read again only at a paced
interval (`_current_plan`), unless a refresh failed or a device flow was started here. A pending
flow may end without a write, and a state held because the store refused it is not in the
store: those are judged at every pass. The due settings are served concurrently: at most
`concurrency` at once, and at most `per_provider` of one provider, so a slow or dead provider
holds up only its own settings (each request has the HTTP port's timeout).
Everything a pass does goes through the same single-flight paths as the CLI, so `serve` and a
concurrent `token get` or `send` never refresh or poll the same token at once. The next tick
comes at the earliest due time of any setting, but at least every `max_tick` seconds so new
settings and tokens are picked up; a device flow started in this process (the web page's
[Get Token], `Authorizer.begin`) sets `wakeup`, and the next tick comes at once, so its first
poll is on time.

A setting's state is the one the refresher holds when the store refused it, else the stored one.
While a re-authorization is pending, the token it keeps in force is refreshed on its own schedule
and the flow is polled on its own; a flow that has ended (expired, or its `token get` is gone)
is due at once, so that its end is recorded and the previous token is back in the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tokenpost.clock import Clock
from tokenpost.errors import TokenpostError
from tokenpost.oauth.pending import DevicePending
from tokenpost.ports import Store
from tokenpost.services.authorize import Authorizer
from tokenpost.services.bounded import run_bounded
from tokenpost.services.refresh import Refresher
from tokenpost.services.targets import (
    Target,
    current_record,
    flow_ended,
    load_current,
    never_written,
    oauth_settings,
    resolve_target,
    target_of,
)
from tokenpost.settings.model import MailSetting, Provider
from tokenpost.tokens.policy import refresh_due_at
from tokenpost.tokens.state import Acquired, TokenState, WaitingForAuthorization, in_force

log = logging.getLogger("tokenpost.scheduler")


@dataclass
class Scheduler:
    store: Store
    clock: Clock
    refresher: Refresher
    authorizer: Authorizer
    max_tick: float = 30.0
    min_tick: float = 0.2
    concurrency: int = 32  # due settings served at once, in all
    per_provider: int = 8  # and of one provider
    # After this scheduler's own refreshes, the plan is read again at most this often (see
    # `_current_plan`): at least `min_replan` seconds, and `replan_factor` times the CPU time
    # the last read took, at most `max_replan` seconds.
    min_replan: float = 1.0
    max_replan: float = 5.0
    replan_factor: float = 20.0
    _plan: _Plan | None = field(default=None, init=False, repr=False)

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

    async def tick(self, stop: asyncio.Event | None = None) -> float:
        """One pass over all settings; returns the seconds until the next one is due. Once
        `stop` is set no other setting is served: only those in flight are finished."""
        now = self.clock.now()
        plan = await self._current_plan()
        held = set(self.refresher.held_ids())
        next_due = now + self.max_tick
        due: list[MailSetting] = []
        for when, setting in plan.fixed:  # soonest first: stops at the first not yet due
            if setting.setting_id in held or setting.setting_id in plan.moved:
                continue
            if when > now:
                next_due = min(next_due, when)
                break
            due.append(setting)
        for setting_id, when in plan.moved.items():  # served since the plan was read
            if setting_id in held:
                continue
            if when <= now:
                due.append(plan.stored[setting_id][0].setting)
            else:
                next_due = min(next_due, when)
        for setting, state in self._judged_each_pass(plan, held):
            judged = self._due_at(setting, state, now)
            if judged is not None and judged <= now:
                due.append(setting)
            elif judged is not None:
                next_due = min(next_due, judged)
        for after in await self._serve_all(plan, due, stop):
            if after is not None:
                next_due = min(next_due, after)
        return max(self.min_tick, next_due - self.clock.now())

    async def _current_plan(self) -> _Plan:
        """The plan of the store as it is now: read again when its revision changed.

        A token this scheduler refreshed is moved in the plan (`_Plan.moved`) to the new
        token's due time; the write changed the revision, but reading every record again after
        each refresh would cost, at ten thousand settings, a read of them all every few tenths
        of a second. So once the plan has moved entries it is read again only when the pacing
        interval has passed (others' changes show within it); a refresh that failed forces the
        next read (its retry time is in the store)."""
        revision = await self.store.revision()
        plan = self._plan
        if plan is not None and (plan.revision == revision or self._paced(plan)):
            return plan
        started = time.process_time()
        states = await self._stored_states()
        cost = time.process_time() - started
        self._plan = _Plan.of(
            revision,
            states,
            self._fixed_due,
            read_at=self.clock.now(),
            cost=cost,
            flows_started=self.authorizer.flows_started,
        )
        return self._plan

    def _paced(self, plan: _Plan) -> bool:
        """True while a plan that holds this scheduler's own moves is kept despite a change."""
        if not plan.moved or plan.failed or plan.flows_started != self.authorizer.flows_started:
            return False  # a device flow started here is polled on time (`wakeup`)
        interval = min(self.max_replan, max(self.min_replan, self.replan_factor * plan.cost))
        return self.clock.now() - plan.read_at < interval

    def _judged_each_pass(
        self, plan: _Plan, held: set[str]
    ) -> list[tuple[MailSetting, TokenState]]:
        """The settings whose due time may change without a write: a pending flow (it may
        end), and a state this process holds (the store has not got it)."""
        found = [(s, state) for s, state in plan.waiting if s.setting_id not in held]
        for setting_id in held:
            stored, state = plan.stored.get(setting_id), self.refresher.held_state(setting_id)
            if stored is not None and state is not None:
                found.append((stored[0].setting, state))
        return found

    async def _stored_states(self) -> list[tuple[MailSetting, Target, TokenState]]:
        """Every OAuth 2.0 setting with its stored state (read through its binding only), from
        one read of each kind of record. A setting whose provider is gone or damaged is logged
        and left out."""
        settings = await oauth_settings(self.store)
        providers = {p.name: p for p in await self.store.list_providers()}
        tokens = {r.setting_id: r for r in await self.store.load_tokens()}
        found: list[tuple[MailSetting, Target, TokenState]] = []
        for setting in settings:
            provider = providers.get(setting.provider or "")
            try:
                # Not listed: gone or damaged; reading it alone tells which.
                target = (
                    self._resolved(setting, provider)
                    if provider is not None
                    else await target_of(self.store, setting)
                )
            except TokenpostError as error:
                log.warning("%s: %s", setting.setting_id, error)
                continue
            record = tokens.get(setting.setting_id) or never_written(setting.setting_id)
            found.append((setting, target, current_record(record, target).state))
        return found

    def _resolved(self, setting: MailSetting, provider: Provider) -> Target:
        """`resolve_target`, or the target of the last plan when it was resolved from these
        very records: the store hands out the same record objects for rows that did not change
        (`store_records.RowReader`), so a plan read again after a change resolves (and hashes
        the binding of) only the settings that changed."""
        kept = None if self._plan is None else self._plan.stored.get(setting.setting_id)
        if kept is not None and kept[0].setting is setting and kept[0].provider is provider:
            return kept[0]
        return resolve_target(setting, provider)

    def _fixed_due(self, state: TokenState) -> float | None:
        """The due time of a stored state that is not waiting: its refresh (None: none)."""
        token = in_force(state)
        return None if token is None else refresh_due_at(token, self.refresher.margin)

    async def _serve_all(
        self, plan: _Plan, due: list[MailSetting], stop: asyncio.Event | None
    ) -> list[float | None]:
        """Serve the due settings concurrently within the bounds, none once `stop` is set; each
        one's next due time."""

        async def serve(setting: MailSetting) -> float | None:
            try:
                return await self._serve_one(setting, plan.refreshable(setting.setting_id))
            except TokenpostError as error:
                log.warning("%s: %s", setting.setting_id, error)
                return None

        nexts = await run_bounded(
            due,
            serve,
            peer=lambda setting: setting.provider or "",
            concurrency=self.concurrency,
            per_peer=self.per_provider,
            stop=stop,
        )
        for setting, after in zip(due, nexts, strict=True):
            plan.move(setting.setting_id, after, now=self.clock.now())
        return nexts

    async def _serve_one(
        self, setting: MailSetting, planned: tuple[Target, Acquired] | None
    ) -> float | None:
        """Do what the setting is due for; return when it is next due (None: nothing pending).

        A token the plan holds in force (`planned`) is refreshed without reading it again
        first (the refresher reads it under the flight lock). Its next due time is the new
        token's; after a failure (recorded in the store, which changes its revision) it is
        now: the next pass plans it again from one read."""
        setting_id = setting.setting_id
        if planned is not None and self.refresher.held_state(setting_id) is None:
            token = await self.refresher.refresh_if_due(setting_id, known=planned)
            now = self.clock.now()
            return now if token is None else self._due_at(setting, token, now)
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
        """When the setting's token next needs work, read again after serving it."""
        return self._due_at(setting, await self._state(setting), self.clock.now())

    def _due_at(self, setting: MailSetting, state: TokenState, now: float) -> float | None:
        """When a setting in `state` next needs work: a refresh, a poll, or an expiry."""
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


@dataclass(frozen=True, slots=True)
class _Plan:
    """The due times the store's `revision` implies: `fixed` (soonest first) for the settings
    whose stored state alone fixes them; the `waiting` ones are judged at each pass. `stored`:
    each setting's target (its setting and provider records among it) and stored state, as
    read for this revision. `moved`: the settings served since, with their next due time as
    serving them told (they are not in `fixed` any more); `failed` once serving one failed (its
    next due time is only in the store)."""

    revision: int
    fixed: list[tuple[float, MailSetting]]
    waiting: list[tuple[MailSetting, TokenState]]
    stored: dict[str, tuple[Target, TokenState]]
    read_at: float  # when it was read (the scheduler's clock)
    cost: float  # the CPU seconds reading it took
    flows_started: int  # `Authorizer.flows_started` when it was read
    moved: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        revision: int,
        states: list[tuple[MailSetting, Target, TokenState]],
        fixed_due: Callable[[TokenState], float | None],
        *,
        read_at: float,
        cost: float,
        flows_started: int,
    ) -> _Plan:
        fixed: list[tuple[float, MailSetting]] = []
        judged: list[tuple[MailSetting, TokenState]] = []
        for setting, _, state in states:
            if isinstance(state, WaitingForAuthorization):
                judged.append((setting, state))
                continue
            when = fixed_due(state)
            if when is not None:
                fixed.append((when, setting))
        fixed.sort(key=lambda pair: pair[0])
        stored = {setting.setting_id: (target, state) for setting, target, state in states}
        return cls(revision, fixed, judged, stored, read_at, cost, flows_started)

    def move(self, setting_id: str, after: float | None, *, now: float) -> None:
        """Record what serving a setting of `fixed` told: its next due time (None: nothing
        pending; `now` or before: it failed, and only a read of the store tells when next)."""
        if setting_id not in self.stored or isinstance(
            self.stored[setting_id][1], WaitingForAuthorization
        ):
            return  # a waiting one is judged at every pass from the store's record
        if after is not None and after <= now:
            self.failed.append(setting_id)
        self.moved[setting_id] = float("inf") if after is None else after

    def refreshable(self, setting_id: str) -> tuple[Target, Acquired] | None:
        """The setting's target and stored token when the state is not waiting and a token is
        in force (then a refresh is all it may be due for)."""
        stored = self.stored.get(setting_id)
        if stored is None or isinstance(stored[1], WaitingForAuthorization):
            return None
        token = in_force(stored[1])
        return None if token is None else (stored[0], token)
