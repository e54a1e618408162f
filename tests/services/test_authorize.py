"""The device flow through the service, with a scripted provider and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from service_world import DEVICE_URL, TOKEN_URL, World

from fakes import json_response
from tokenpost.errors import AuthorizationEndedError, UsageError
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.secret import Secret
from tokenpost.services.authorize import DevicePrompt, Prompt
from tokenpost.settings.model import AuthMethod
from tokenpost.tokens.state import Acquired, NotAcquired, WaitingForAuthorization

DEVICE_ANSWER = {
    "device_code": "dc-secret-1",
    "user_code": "ABCD-EFGH",
    "verification_uri": "https://as.example/activate",
    "expires_in": 600,
    "interval": 5,
}
TOKEN = {
    "access_token": "at-1",
    "token_type": "Bearer",
    "expires_in": 3600,
    "refresh_token": "rt-1",
}


def provider_answers(world: World, answers: Iterator[HttpResponse]) -> list[float]:
    """Token endpoint answers in order; returns the (fake) times of each poll."""
    times: list[float] = []

    def respond(request: HttpRequest) -> HttpResponse:
        times.append(world.clock.now())
        return next(answers)

    world.http.routes[DEVICE_URL] = lambda r: json_response(200, DEVICE_ANSWER)
    world.http.routes[TOKEN_URL] = respond
    return times


async def collect(prompts: list[Prompt], prompt: Prompt) -> None:
    prompts.append(prompt)


async def test_device_flow_honours_interval_and_slow_down(world: World) -> None:
    answers = iter(
        [
            json_response(400, {"error": "authorization_pending"}),
            json_response(400, {"error": "slow_down"}),
            json_response(400, {"error": "authorization_pending"}),
            json_response(200, TOKEN),
        ]
    )
    times = provider_answers(world, answers)
    prompts: list[Prompt] = []
    start = world.clock.now()

    acquired = await world.authorizer.obtain("smtp", lambda p: collect(prompts, p))

    assert isinstance(acquired, Acquired)
    assert acquired.access_token == Secret("at-1")
    [prompt] = prompts
    assert isinstance(prompt, DevicePrompt)
    assert prompt.user_code == "ABCD-EFGH"
    gaps = [b - a for a, b in zip([start, *times], times, strict=False)]
    assert gaps == [5, 5, 10, 10]  # slow_down adds 5 s to this and every later poll
    assert ("token_acquired", "smtp") in world.events


async def test_denial_restores_not_acquired_with_the_reason(world: World) -> None:
    provider_answers(world, iter([json_response(400, {"error": "authorization_declined"})]))
    with pytest.raises(AuthorizationEndedError, match="denied"):
        await world.authorizer.obtain("smtp", lambda p: asyncio.sleep(0))
    state = (await world.store.load_token("smtp")).state
    assert isinstance(state, NotAcquired)
    assert state.note
    assert "denied" in str(state.note)


async def test_a_failed_reauthorization_keeps_the_previous_token(world: World) -> None:
    provider_answers(world, iter([json_response(200, TOKEN)]))
    await world.authorizer.obtain("smtp", lambda p: asyncio.sleep(0))
    provider_answers(world, iter([json_response(400, {"error": "expired_token"})]))
    with pytest.raises(AuthorizationEndedError):
        await world.authorizer.obtain("smtp", lambda p: asyncio.sleep(0))
    state = (await world.store.load_token("smtp")).state
    assert isinstance(state, Acquired)
    assert state.access_token == Secret("at-1")


async def test_cancellation_leaves_the_flow_cleanly(world: World) -> None:
    provider_answers(world, iter([json_response(400, {"error": "authorization_pending"})] * 1000))
    started = asyncio.Event()

    async def on_prompt(prompt: Prompt) -> None:
        started.set()

    task = asyncio.create_task(world.authorizer.obtain("smtp", on_prompt))
    await started.wait()
    assert isinstance((await world.store.load_token("smtp")).state, WaitingForAuthorization)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    state = (await world.store.load_token("smtp")).state
    assert isinstance(state, NotAcquired)
    assert state.note
    assert "cancel" in str(state.note)


async def test_user_who_never_approves_ends_at_expires_in(world: World) -> None:
    times = provider_answers(
        world, iter([json_response(400, {"error": "authorization_pending"})] * 1000)
    )
    start = world.clock.now()
    with pytest.raises(AuthorizationEndedError, match="expire"):
        await world.authorizer.obtain("smtp", lambda p: asyncio.sleep(0))
    assert all(t < start + 600 for t in times)
    assert isinstance((await world.store.load_token("smtp")).state, NotAcquired)


async def test_token_get_on_a_password_setting_is_a_usage_error(world: World) -> None:
    from service_world import smtp_setting

    from tokenpost.secret import Secret as S

    await world.store.put_smtp(
        smtp_setting(auth=AuthMethod.PASSWORD, provider=None, password=S("pw"))
    )
    with pytest.raises(UsageError) as caught:
        await world.authorizer.obtain("smtp", lambda p: asyncio.sleep(0))
    assert caught.value.exit_code == 2
