"""Re-obtaining a token never takes a working setting down: while a new authorization is pending
the previous token serves mail and is refreshed; a flow that ends without a grant — denied,
expired, or abandoned by a process that is gone — puts it back in force."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from service_world import DEVICE_URL, TOKEN_URL, World

from fakes import json_response
from tokenpost.errors import AuthorizationEndedError
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.oauth.pending import DevicePending
from tokenpost.secret import Secret
from tokenpost.services.refresh import TokenUnavailableError
from tokenpost.services.scheduler import Scheduler
from tokenpost.services.status import status
from tokenpost.services.targets import load_target
from tokenpost.text import Text
from tokenpost.tokens.state import (
    Acquired,
    Invalid,
    NotAcquired,
    TokenState,
    WaitingForAuthorization,
)
from tokenpost.tokens.state_id import StateId

OWNER = "1" * 32


class Provider:
    """The token endpoint: device polls get `device` (pending until approved); refreshes
    rotate."""

    def __init__(self) -> None:
        self.device = json_response(400, {"error": "authorization_pending"})
        self.refreshes: list[str] = []
        self.polls = 0

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = request.form_value("refresh_token")
        if isinstance(token, Secret):
            self.refreshes.append(token.reveal())
            n = len(self.refreshes)
            return json_response(
                200,
                {
                    "access_token": f"at-r{n}",
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": f"rt-r{n}",
                },
            )
        self.polls += 1
        return self.device


def previous_token(world: World, *, expires_in: float) -> Acquired:
    now = world.clock.now()
    return Acquired(
        access_token=Secret("at-old"),
        expires_at=now + expires_in,
        obtained_at=now - 3000,
        refresh_token=Secret("rt-old"),
    )


def device_flow(world: World, *, expires_in: float = 600) -> DevicePending:
    now = world.clock.now()
    return DevicePending(
        device_code=Secret("dc-1"),
        user_code="ABCD-EFGH",
        verification_uri="https://as.example/activate",
        expires_at=now + expires_in,
        interval=5,
        next_poll_at=now + 5,
    )


async def pending(
    world: World,
    previous: Acquired | Invalid | None,
    *,
    owner: tuple[str, str] | None = ("host-a", OWNER),
    flow_expires_in: float = 600,
) -> Provider:
    """Store a re-authorization in progress, as `token get` of another process leaves it."""
    target = await load_target(world.store, "smtp")
    host, owner_id = owner if owner is not None else (None, None)
    waiting = WaitingForAuthorization(
        device_flow(world, expires_in=flow_expires_in),
        started_at=world.clock.now(),
        previous=previous,
        owner_host=host,
        owner_id=owner_id,
    )
    await world.store.save_token("smtp", waiting, binding=target.binding, expected_version=0)
    provider = Provider()
    world.http.routes[TOKEN_URL] = provider
    return provider


async def stored(world: World) -> TokenState:
    return (await world.store.load_token("smtp")).state


async def test_the_previous_token_serves_mail_while_the_flow_is_pending(world: World) -> None:
    old = previous_token(world, expires_in=3000)
    provider = await pending(world, old)
    assert await world.refresher.access_token("smtp") == Secret("at-old")
    assert provider.refreshes == []


async def test_the_previous_token_is_refreshed_and_the_flow_goes_on(world: World) -> None:
    provider = await pending(world, previous_token(world, expires_in=60))
    assert await world.refresher.access_token("smtp") == Secret("at-r1")
    assert provider.refreshes == ["rt-old"]
    state = await stored(world)
    assert isinstance(state, WaitingForAuthorization)
    assert state.flow.user_code == "ABCD-EFGH"
    assert isinstance(state.previous, Acquired)
    assert state.previous.refresh_token == Secret("rt-r1")
    # Denied: the refreshed previous token is back, not the one the flow started over.
    provider.device = json_response(400, {"error": "access_denied"})
    world.clock.t += 10
    await world.authorizer.poll_due("smtp")
    restored = await stored(world)
    assert isinstance(restored, Acquired)
    assert restored.access_token == Secret("at-r1")


async def test_a_grant_replaces_the_previous_token(world: World) -> None:
    provider = await pending(world, previous_token(world, expires_in=3000))
    provider.device = json_response(
        200,
        {
            "access_token": "at-new",
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": "x",
        },
    )
    world.clock.t += 10
    await world.authorizer.poll_due("smtp")
    assert await world.refresher.access_token("smtp") == Secret("at-new")


async def test_a_revoked_previous_token_leaves_the_flow_pending(world: World) -> None:
    await pending(world, previous_token(world, expires_in=-5))
    world.http.routes[TOKEN_URL] = lambda r: json_response(400, {"error": "invalid_grant"})
    with pytest.raises(TokenUnavailableError, match="invalid_grant"):
        await world.refresher.access_token("smtp")
    state = await stored(world)
    assert isinstance(state, WaitingForAuthorization)
    assert isinstance(state.previous, Invalid)
    with pytest.raises(TokenUnavailableError, match="new authorization is still pending"):
        await world.refresher.access_token("smtp")


@pytest.mark.parametrize(
    ("gone", "owner", "ended"),
    [
        ({OWNER}, ("host-a", OWNER), True),  # kill -9 of the `token get` on this host
        (set(), ("host-a", OWNER), False),  # it still runs
        ({OWNER}, ("host-b", OWNER), False),  # another host: judged by the expiry only
        ({OWNER}, None, False),  # a flow recorded before owners were
    ],
    ids=["owner gone", "owner alive", "other host", "no owner"],
)
async def test_a_flow_whose_owner_is_gone_reads_as_ended(
    world: World, gone: set[str], owner: tuple[str, str] | None, ended: bool
) -> None:
    old = previous_token(world, expires_in=3000)
    provider = await pending(world, old, owner=owner)
    world.owners.gone = gone
    [row] = await status(world.store, now=world.clock.now(), owners=world.owners)
    expected = StateId.ACQUIRED if ended else StateId.WAITING_FOR_AUTHORIZATION
    assert (row.state, row.in_force) == (expected, True)
    assert isinstance(await stored(world), WaitingForAuthorization)  # reads never write
    # The scheduler records the end (and polls only a flow that goes on).
    scheduler = Scheduler(world.store, world.clock, world.refresher, world.authorizer)
    world.clock.t += 10
    await scheduler.tick()
    after = await stored(world)
    if ended:
        assert after == old
        assert provider.polls == 0
    else:
        assert isinstance(after, WaitingForAuthorization)
        assert provider.polls == 1


async def test_an_expired_flow_reads_as_ended_everywhere(world: World) -> None:
    await pending(world, None, flow_expires_in=60)
    world.clock.t += 61
    [row] = await status(world.store, now=world.clock.now())
    assert row.state is StateId.NOT_ACQUIRED
    assert row.reason is not None
    assert "expired" in str(row.reason)
    with pytest.raises(TokenUnavailableError, match="has no token"):
        await world.refresher.access_token("smtp")


async def test_status_shows_the_token_a_pending_flow_keeps_in_force(world: World) -> None:
    old = replace(
        previous_token(world, expires_in=3000), last_error=Text("HTTP {status}", status=503)
    )
    await pending(world, old)
    [row] = await status(world.store, now=world.clock.now(), owners=world.owners)
    assert row.state is StateId.WAITING_FOR_AUTHORIZATION
    assert (row.previous_state, row.previous_expires_at) == (StateId.ACQUIRED, old.expires_at)
    assert row.user_code == "ABCD-EFGH"
    assert row.in_force


async def test_the_scheduler_refreshes_the_previous_token_and_polls_the_flow(
    world: World,
) -> None:
    provider = await pending(world, previous_token(world, expires_in=30))
    scheduler = Scheduler(world.store, world.clock, world.refresher, world.authorizer)
    await scheduler.tick()  # the previous token is due now; the first poll in 5 s
    assert provider.refreshes == ["rt-old"]
    assert provider.polls == 0
    world.clock.t += 5
    await scheduler.tick()
    assert provider.polls == 1
    assert provider.refreshes == ["rt-old"]


async def test_a_flow_started_here_records_this_process_as_its_owner(world: World) -> None:
    world.http.routes[DEVICE_URL] = lambda r: json_response(
        200,
        {
            "device_code": "dc",
            "user_code": "WXYZ-1234",
            "verification_uri": "https://as.example/activate",
            "expires_in": 600,
            "interval": 5,
        },
    )
    world.http.routes[TOKEN_URL] = lambda r: json_response(400, {"error": "authorization_pending"})
    seen: list[TokenState] = []

    async def on_prompt(prompt: object) -> None:
        seen.append(await stored(world))

    task = asyncio.create_task(world.authorizer.obtain("smtp", on_prompt))
    async with asyncio.timeout(5):
        while not seen:
            await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [state] = seen
    assert isinstance(state, WaitingForAuthorization)
    assert (state.owner_host, state.owner_id) == (world.owners.host, world.owners.mine)


async def test_a_flow_that_ended_elsewhere_is_not_reported_as_acquired(world: World) -> None:
    """Another process (`serve`) polled our flow and got a denial: the previous token is back,
    and `token get` must say the authorization ended, not that a token was acquired."""
    provider = Provider()
    world.http.routes[TOKEN_URL] = provider
    world.http.routes[DEVICE_URL] = lambda r: json_response(
        200,
        {
            "device_code": "dc",
            "user_code": "WXYZ-1234",
            "verification_uri": "https://as.example/activate",
            "expires_in": 600,
            "interval": 5,
        },
    )
    target = await load_target(world.store, "smtp")
    old = previous_token(world, expires_in=3000)
    await world.store.save_token("smtp", old, binding=target.binding, expected_version=0)

    async def ended_elsewhere(prompt: object) -> None:
        provider.device = json_response(400, {"error": "access_denied"})
        world.clock.t += 5
        await world.authorizer.poll_due("smtp")  # as `serve` would
        provider.device = json_response(400, {"error": "authorization_pending"})

    with pytest.raises(AuthorizationEndedError, match="previous token is in force again"):
        await world.authorizer.obtain("smtp", ended_elsewhere)
    assert await stored(world) == old
    assert not isinstance(await stored(world), NotAcquired)


async def test_a_connection_is_reused_while_the_previous_token_serves(world: World) -> None:
    from test_send import DRAFT, FakeSmtp

    from tokenpost.services.send import Sender

    await pending(world, previous_token(world, expires_in=3000))
    server = FakeSmtp()
    async with Sender(world.store, world.refresher, world.clock, server).session() as outbox:
        for _ in range(3):
            await outbox.send(DRAFT)
    assert server.connects == 1  # the token in force is not taken for an expired one
    assert len(server.messages) == 3
    assert all("at-old" in token for token in server.tokens)
