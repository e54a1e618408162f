"""A grant the store refuses is held, used and refreshed with its own refresh token, and written
once the store takes it; the provider rotates refresh tokens and revokes on reuse (RFC 9700
§4.14), so one replay would show as a revoked grant."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import pytest
from service_world import TOKEN_URL, World, provider, smtp_setting

from fakes import RefusingStore, json_response
from tokenpost.errors import FlightLockBusyError
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.secret import Secret
from tokenpost.services.refresh import TokenUnavailableError
from tokenpost.services.scheduler import Scheduler
from tokenpost.services.targets import load_target
from tokenpost.tokens.state import Acquired, Invalid

LIFETIME = 3600
MARGIN = 600


@dataclass
class RotatingProvider:
    """A token endpoint that rotates refresh tokens and revokes the grant when a used one is
    presented again."""

    valid: set[str] = field(default_factory=lambda: {"rt-0"})
    used: set[str] = field(default_factory=set)
    presented: list[str] = field(default_factory=list)
    revoked: bool = False
    issued: int = 0

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = request.form_value("refresh_token")
        assert isinstance(token, Secret)
        value = token.reveal()
        self.presented.append(value)
        if value in self.used:
            self.revoked = True
            self.valid.clear()
        if self.revoked or value not in self.valid:
            return json_response(400, {"error": "invalid_grant"})
        self.valid.discard(value)
        self.used.add(value)
        self.issued += 1
        new = f"rt-{self.issued}"
        self.valid.add(new)
        return json_response(
            200,
            {
                "access_token": f"at-{self.issued}",
                "token_type": "Bearer",
                "expires_in": LIFETIME,
                "refresh_token": new,
            },
        )


class HoldingWorld(World):
    store: RefusingStore

    def __init__(self, store_retry: tuple[float, float] = (0.01, 0.05)) -> None:
        super().__init__(RefusingStore(), store_retry=store_retry)
        self.provider = RotatingProvider()
        self.http.routes[TOKEN_URL] = self.provider
        self.detailed_events: list[tuple[str, str, str]] = []
        self.refresher.on_event = lambda e, s, d: self.detailed_events.append((e, s, d))

    def unwritable(self) -> list[tuple[str, str, str]]:
        return [e for e in self.detailed_events if e[0] == "store_unwritable"]


async def holding_world(store_retry: tuple[float, float] = (0.01, 0.05)) -> HoldingWorld:
    w = HoldingWorld(store_retry)
    await w.store.put_provider(provider())
    await w.store.put_smtp(smtp_setting())
    target = await load_target(w.store, "smtp")
    now = w.clock.now()
    old = Acquired(
        access_token=Secret("at-0"),
        expires_at=now + 120,  # due (margin 600 s), usable for 90 s more
        obtained_at=now - LIFETIME + 120,
        refresh_token=Secret("rt-0"),
    )
    await w.store.save_token("smtp", old, binding=target.binding, expected_version=0)
    return w


@pytest.fixture
async def hw() -> HoldingWorld:
    return await holding_world()


async def stored(w: World) -> Acquired:
    state = (await w.store.load_token("smtp")).state
    assert isinstance(state, Acquired)
    return state


async def test_a_grant_the_store_refuses_is_held_and_used(hw: HoldingWorld) -> None:
    hw.store.refusing = True
    token = await hw.refresher.access_token("smtp")
    assert token == Secret("at-1")
    assert hw.provider.presented == ["rt-0"]
    held = hw.refresher.held_state("smtp")
    assert isinstance(held, Acquired)
    assert held.refresh_token == Secret("rt-1")
    assert (await stored(hw)).refresh_token == Secret("rt-0")  # the store still has the old one
    # Every caller of the process gets the held token, and nobody asks the provider again.
    tokens = await asyncio.gather(*(hw.refresher.access_token("smtp") for _ in range(50)))
    assert {t.reveal() for t in tokens} == {"at-1"}
    current = await hw.refresher.current_token("smtp")
    assert (current.value, current.obtained_at) == (Secret("at-1"), hw.clock.now())
    assert hw.provider.presented == ["rt-0"]
    [(event, setting, detail)] = hw.unwritable()
    assert (event, setting) == ("store_unwritable", "smtp")
    assert "full" in str(detail)
    await hw.refresher.close(grace=0)


async def test_a_held_token_due_again_is_refreshed_with_its_own_refresh_token(
    hw: HoldingWorld,
) -> None:
    hw.store.refusing = True
    await hw.refresher.access_token("smtp")
    for _ in range(3):  # three due times
        hw.clock.t += LIFETIME - MARGIN + 1
        for _ in range(10):
            await hw.refresher.access_token("smtp")
    assert hw.provider.presented == ["rt-0", "rt-1", "rt-2", "rt-3"]  # one request per due time
    assert not hw.provider.revoked
    held = hw.refresher.held_state("smtp")
    assert isinstance(held, Acquired)
    assert held.refresh_token == Secret("rt-4")
    assert len(hw.unwritable()) == 1  # one episode, one event
    await hw.refresher.close(grace=0)


async def test_renew_of_the_held_token_refreshes_it(hw: HoldingWorld) -> None:
    hw.store.refusing = True
    first = await hw.refresher.access_token("smtp")
    renewed = await hw.refresher.renew("smtp", rejected=first)
    assert renewed.value == Secret("at-2")
    assert hw.provider.presented == ["rt-0", "rt-1"]
    await hw.refresher.close(grace=0)


async def test_the_held_grant_is_written_once_the_store_takes_it(
    hw: HoldingWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tokenpost")
    hw.store.refusing = True
    await hw.refresher.access_token("smtp")
    await asyncio.sleep(0.2)  # the writer retries meanwhile
    assert hw.store.refused >= 3
    assert hw.refresher.held_state("smtp") is not None
    hw.store.refusing = False
    async with asyncio.timeout(10):
        while hw.refresher.held_state("smtp") is not None:
            await asyncio.sleep(0.01)
    saved = await stored(hw)
    assert (saved.access_token, saved.refresh_token) == (Secret("at-1"), Secret("rt-1"))
    assert hw.provider.presented == ["rt-0"]  # writing never asks the provider
    assert not hw.lock.locks["smtp"].locked()  # the flight lock is released
    assert "is saved; it is no longer held" in caplog.text
    assert "at-1" not in caplog.text
    assert "rt-1" not in caplog.text
    # A new episode is a new event.
    hw.clock.t += LIFETIME
    hw.store.refusing = True
    await hw.refresher.access_token("smtp")
    assert len(hw.unwritable()) == 2
    await hw.refresher.close(grace=0)


async def test_the_flight_lock_stays_taken_while_a_grant_is_held(hw: HoldingWorld) -> None:
    hw.store.refusing = True
    await hw.refresher.access_token("smtp")
    with pytest.raises(FlightLockBusyError):
        async with hw.lock.hold("smtp", timeout=0.05):
            pytest.fail("another holder while a grant is held")
    # Other users of the lock (a device-flow poll, a delete) wait; the refresher does not.
    assert await hw.refresher.access_token("smtp") == Secret("at-1")
    await hw.refresher.close(grace=0)
    async with asyncio.timeout(1), hw.lock.hold("smtp"):
        pass


async def test_close_writes_what_it_can_and_reports_the_rest(
    hw: HoldingWorld, caplog: pytest.LogCaptureFixture
) -> None:
    hw.store.refusing = True
    await hw.refresher.access_token("smtp")
    unsaved = await hw.refresher.close(grace=0.1)
    assert unsaved == ["smtp"]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "could not be saved" in line
    assert "Free space in the home or make the store writable" in line
    assert "tokenpost token get smtp" in line
    assert "at-1" not in caplog.text
    assert "rt-1" not in caplog.text
    assert hw.refresher.held_state("smtp") is None
    assert not hw.lock.locks["smtp"].locked()


async def test_close_saves_a_held_grant_when_the_store_recovers_in_time() -> None:
    hw = await holding_world(store_retry=(60.0, 60.0))  # no help from the writer task
    hw.store.refusing = True
    await hw.refresher.access_token("smtp")

    async def recover() -> None:
        await asyncio.sleep(0.3)
        hw.store.refusing = False

    recovering = asyncio.create_task(recover())
    assert await hw.refresher.close(grace=5) == []
    await recovering
    assert (await stored(hw)).refresh_token == Secret("rt-1")


async def test_a_revoked_grant_while_held_is_held_as_invalid(hw: HoldingWorld) -> None:
    hw.store.refusing = True
    await hw.refresher.access_token("smtp")
    hw.provider.revoked = True
    hw.clock.t += LIFETIME
    with pytest.raises(TokenUnavailableError, match="invalid_grant"):
        await hw.refresher.access_token("smtp")
    assert isinstance(hw.refresher.held_state("smtp"), Invalid)
    hw.store.refusing = False
    await hw.refresher.write_held()
    assert isinstance((await hw.store.load_token("smtp")).state, Invalid)
    assert hw.refresher.held_state("smtp") is None


async def test_the_scheduler_works_from_the_held_state(hw: HoldingWorld) -> None:
    hw.store.refusing = True
    scheduler = Scheduler(hw.store, hw.clock, hw.refresher, hw.authorizer, max_tick=1e9)
    wait = await scheduler.tick()  # due now: refreshes, the grant is held
    assert hw.provider.presented == ["rt-0"]
    assert wait == pytest.approx(LIFETIME - MARGIN, abs=1)  # from the held token, not the stored
    for _ in range(5):
        await scheduler.tick()
    assert hw.provider.presented == ["rt-0"]
    hw.clock.t += wait
    await scheduler.tick()
    assert hw.provider.presented == ["rt-0", "rt-1"]
    assert not hw.provider.revoked
    await hw.refresher.close(grace=0)
