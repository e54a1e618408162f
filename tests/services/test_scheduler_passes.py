"""The scheduler's pass (issue 10, items 2 and 3): it reads the settings, providers and tokens once
each whatever their number, and only when the store's revision changed; it serves the due
settings concurrently within its bounds, so a provider that does not answer holds up only its
own settings; every due token is refreshed exactly once; a state held because the store refused
it is judged by itself. The HTTP port is our own fake; the provider that stalls is one of its
routes. Real SQLite where the revision matters.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import cast

import pytest
from service_world import TOKEN_URL, World, provider, smtp_setting

from fakes import MemoryStore, RefusingStore, ScriptedHttp, json_response
from store_support import CountingStore
from tokenpost.adapters.home import open_home
from tokenpost.adapters.sql_store import open_store
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.ports import Network, Store
from tokenpost.secret import Secret
from tokenpost.services.scheduler import Scheduler
from tokenpost.services.targets import load_target
from tokenpost.settings.model import AuthMethod, PopSetting, Security
from tokenpost.tokens.state import Acquired

SLOW_URL = "https://slow.example/token"


def pop(name: str, provider_name: str) -> PopSetting:
    return PopSetting(
        name, "pop.example", 995, Security.TLS, 300, AuthMethod.OAUTH2, f"/var/spool/{name}",
        provider=provider_name, account=f"{name}@example.com",
    )  # fmt: skip


async def with_tokens(world: World, names: dict[str, str], *, expires_in: float) -> None:
    """The providers `as` and `slow`, the SMTP setting and a POP setting per name (on the
    provider given), each with a token expiring in `expires_in` seconds."""
    await world.store.put_provider(provider())
    await world.store.put_provider(provider(name="slow", token_endpoint=SLOW_URL))
    await world.store.put_smtp(smtp_setting())
    for name, provider_name in names.items():
        await world.store.put_pop(pop(name, provider_name))
    now = world.clock.now()
    for setting_id in ["smtp", *(f"pop:{name}" for name in names)]:
        target = await load_target(world.store, setting_id)
        state = Acquired(Secret(f"AT-{setting_id}"), now + expires_in, now - 60, Secret("RT"))
        await world.store.save_token(setting_id, state, binding=target.binding, expected_version=0)


def granted(request: HttpRequest) -> HttpResponse:
    body = {"access_token": "AT-new", "token_type": "Bearer", "expires_in": 3600}
    return json_response(200, body)


@dataclasses.dataclass
class StallingHttp(ScriptedHttp):
    """The slow provider's requests wait until `release` is set; `waiting` counts them."""

    release: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    waiting: int = 0
    most_waiting: int = 0

    async def send(
        self, request: HttpRequest, *, network: Network, timeout: float = 30.0
    ) -> HttpResponse:
        if request.url == SLOW_URL:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
            await self.release.wait()
            self.waiting -= 1
        return await super().send(request, network=network, timeout=timeout)


async def test_a_provider_that_does_not_answer_holds_up_only_its_own_settings() -> None:
    http = StallingHttp()
    http.routes = {TOKEN_URL: granted, SLOW_URL: granted}
    world = World()
    world.http = http
    world.refresher.http = http
    names = {f"fast{n}": "as" for n in range(10)} | {f"slow{n}": "slow" for n in range(10)}
    await with_tokens(world, names, expires_in=30)  # all due now
    scheduler = Scheduler(world.store, world.clock, world.refresher, world.authorizer)
    scheduler.per_provider = 3
    fast = ["smtp", *(f"pop:fast{n}" for n in range(10))]

    async def refreshed() -> list[str]:
        found = [(sid, (await world.store.load_token(sid)).state) for sid in fast]
        return [sid for sid, s in found if cast(Acquired, s).access_token == Secret("AT-new")]

    passing = asyncio.create_task(scheduler.tick())
    for _ in range(1000):
        if len(await refreshed()) == len(fast):
            break
        await asyncio.sleep(0)
    assert await refreshed() == fast  # smtp and fast0..fast9, while slow's are stuck
    assert http.waiting == 3
    assert not passing.done()
    http.release.set()
    await passing
    assert http.most_waiting == 3  # never more of one provider at once
    assert http.count(SLOW_URL) == 10  # each due token refreshed exactly once
    assert http.count(TOKEN_URL) == 11


async def test_a_pass_reads_the_store_the_same_few_times_for_3_or_30_settings() -> None:
    calls = []
    for count in (3, 30):
        world = World()
        names = {f"box{n:02d}": "as" for n in range(count)}
        await with_tokens(world, names, expires_in=3000)  # none due
        counting = CountingStore(world.store)
        store = cast(Store, counting)
        scheduler = Scheduler(store, world.clock, world.refresher, world.authorizer)
        await scheduler.tick()
        calls.append(counting.calls)
    assert calls[0] == calls[1]
    assert sum(calls[1].values()) <= 5


async def test_a_pass_over_many_due_tokens_refreshes_each_once() -> None:
    world = World(MemoryStore())
    world.http.routes[TOKEN_URL] = granted
    await with_tokens(world, {f"box{n:02d}": "as" for n in range(40)}, expires_in=30)
    scheduler = Scheduler(world.store, world.clock, world.refresher, world.authorizer)
    wait = await scheduler.tick()
    assert world.http.count(TOKEN_URL) == 41
    assert 0 < wait <= scheduler.max_tick
    await scheduler.tick()
    assert world.http.count(TOKEN_URL) == 41  # nothing is due again


async def test_a_due_token_costs_one_read_and_one_write_beyond_the_plan() -> None:
    # The plan read every setting, provider and token; a due token is then read once more,
    # under its flight lock, and written once: nothing is read again before the lock or after.
    world = World(MemoryStore())
    world.http.routes[TOKEN_URL] = granted
    await with_tokens(world, {f"box{n:02d}": "as" for n in range(30)}, expires_in=30)
    counting = CountingStore(world.store)
    store = cast(Store, counting)
    world.refresher.store = store
    scheduler = Scheduler(store, world.clock, world.refresher, world.authorizer, max_tick=1e9)
    wait = await scheduler.tick()
    assert world.http.count(TOKEN_URL) == 31
    per_token = {"load_token": 31, "save_token": 31}
    plan = {"revision": 1, "list_pop": 1, "get_smtp": 1, "list_providers": 1, "load_tokens": 1}
    assert dict(counting.calls) == per_token | plan
    assert wait == pytest.approx(3600 - world.refresher.margin, abs=1)  # the new tokens' due


async def test_a_pass_on_an_unchanged_store_reads_only_its_revision(tmp_path: Path) -> None:
    async with await open_store(open_home(tmp_path / "home", {})) as sql:
        world = World(cast(MemoryStore, sql))
        world.http.routes[TOKEN_URL] = granted
        await with_tokens(world, {f"box{n:02d}": "as" for n in range(5)}, expires_in=3000)
        counting = CountingStore(sql)
        store = cast(Store, counting)
        scheduler = Scheduler(store, world.clock, world.refresher, world.authorizer)
        first = await scheduler.tick()
        counting.calls.clear()
        assert await scheduler.tick() == first
        assert counting.calls == {"revision": 1}
        # Another process makes a token due: the next pass reads the store and refreshes it.
        async with await open_store(open_home(tmp_path / "home", {})) as other:
            record = await other.load_token("pop:box03")
            soon = dataclasses.replace(cast(Acquired, record.state), expires_at=world.clock.now())
            await other.save_token(
                "pop:box03", soon, binding=record.binding, expected_version=record.version
            )
        await scheduler.tick()
        assert world.http.count(TOKEN_URL) == 1
        refreshed = cast(Acquired, (await sql.load_token("pop:box03")).state)
        assert refreshed.access_token == Secret("AT-new")


async def test_after_its_own_refreshes_the_plan_is_read_again_only_when_paced(
    tmp_path: Path,
) -> None:
    # Refreshing changes the revision; the scheduler moves what it refreshed in its plan and
    # reads every record again only after the pacing interval, so others' changes show then.
    async with await open_store(open_home(tmp_path / "home", {})) as sql:
        world = World(cast(MemoryStore, sql))
        world.http.routes[TOKEN_URL] = granted
        await with_tokens(world, {f"box{n:02d}": "as" for n in range(5)}, expires_in=30)
        counting = CountingStore(sql)
        store = cast(Store, counting)
        scheduler = Scheduler(store, world.clock, world.refresher, world.authorizer)
        await scheduler.tick()  # all six due: refreshed
        assert world.http.count(TOKEN_URL) == 6
        counting.calls.clear()
        for _ in range(3):
            await scheduler.tick()
        assert world.http.count(TOKEN_URL) == 6  # nothing refreshed twice
        assert counting.calls == {"revision": 3}  # the plan was not read again
        async with await open_store(open_home(tmp_path / "home", {})) as other:
            await other.put_pop(pop("late", "as"))  # another process adds a setting
            target = await load_target(other, "pop:late")
            now = world.clock.now()
            due = Acquired(Secret("AT-late"), now + 10, now - 60, Secret("RT"))
            await other.save_token("pop:late", due, binding=target.binding, expected_version=0)
        await scheduler.tick()
        assert world.http.count(TOKEN_URL) == 6  # not yet: the plan is paced
        world.clock.t += scheduler.max_replan
        await scheduler.tick()
        assert world.http.count(TOKEN_URL) == 7  # read again, and the new token refreshed
        assert counting.calls["load_tokens"] == 1
        counting.calls.clear()
        world.authorizer.flows_started += 1  # `begin` started a device flow in this process
        await scheduler.tick()
        assert counting.calls["load_tokens"] == 1  # read at once, so its first poll is on time


async def test_a_failed_refresh_is_planned_again_from_the_store(tmp_path: Path) -> None:
    # The provider refuses for now: the retry time is in the store, and the next pass reads it
    # at once instead of asking the provider again at every pass.
    async with await open_store(open_home(tmp_path / "home", {})) as sql:
        world = World(cast(MemoryStore, sql))
        world.http.routes[TOKEN_URL] = lambda request: json_response(
            503, {"error": "temporarily_unavailable"}
        )
        await with_tokens(world, {"box00": "as"}, expires_in=30)
        scheduler = Scheduler(sql, world.clock, world.refresher, world.authorizer)
        await scheduler.tick()
        asked = world.http.count(TOKEN_URL)
        assert asked == 2
        wait = await scheduler.tick()
        for _ in range(3):
            await scheduler.tick()
        assert world.http.count(TOKEN_URL) == asked  # not again before the retry time
        retries = [cast(Acquired, (await sql.load_token(sid)).state).retry_at
                   for sid in ("smtp", "pop:box00")]  # fmt: skip
        assert None not in retries
        soonest = min(cast(list[float], retries))
        assert wait == pytest.approx(soonest - world.clock.now(), abs=0.5)


class SteadyStore(RefusingStore):
    """A store whose revision changes only with a token written (nothing else changes here)."""

    async def revision(self) -> int:
        return self.writes


async def test_a_held_state_is_judged_by_itself_not_by_the_stale_stored_one() -> None:
    world = World(SteadyStore())
    world.http.routes[TOKEN_URL] = granted
    await with_tokens(world, {"fax": "as"}, expires_in=30)  # both due
    store = cast(SteadyStore, world.store)
    store.refusing = True  # the disk is full: the new grants are held
    counting = CountingStore(store)
    scheduler = Scheduler(cast(Store, counting), world.clock, world.refresher, world.authorizer)
    await scheduler.tick()
    assert world.http.count(TOKEN_URL) == 2
    assert sorted(world.refresher.held_ids()) == ["pop:fax", "smtp"]
    counting.calls.clear()
    wait = await scheduler.tick()  # the stored tokens still look due; the held ones are not
    assert counting.calls == {"revision": 1}
    assert world.http.count(TOKEN_URL) == 2
    assert wait == scheduler.max_tick


async def test_once_stopping_no_other_setting_is_served() -> None:
    world = World()
    stop = asyncio.Event()

    def stopping(request: HttpRequest) -> HttpResponse:
        stop.set()  # SIGTERM arrives while the first refresh is in flight
        return granted(request)

    world.http.routes[TOKEN_URL] = stopping
    await with_tokens(world, {f"box{n}": "as" for n in range(5)}, expires_in=30)  # 6 due
    scheduler = Scheduler(world.store, world.clock, world.refresher, world.authorizer)
    scheduler.concurrency = 1
    await scheduler.tick(stop)
    assert world.http.count(TOKEN_URL) == 1
