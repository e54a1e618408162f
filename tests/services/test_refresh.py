"""Refreshing through the service with fakes of our own ports: single flight, rotation, failures."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from service_world import TOKEN_URL, World

from fakes import json_response
from tokenpost.errors import TransientOAuthError
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.secret import Secret
from tokenpost.services.refresh import TokenUnavailableError
from tokenpost.services.targets import load_target
from tokenpost.tokens.state import Acquired, Invalid


async def seed(world: World, *, expires_in: float, refresh: str | None = "rt-0") -> None:
    target = await load_target(world.store, "smtp")
    now = world.clock.now()
    state = Acquired(
        access_token=Secret("at-0"),
        expires_at=now + expires_in,
        obtained_at=now - 3000,
        refresh_token=Secret(refresh) if refresh else None,
    )
    await world.store.save_token("smtp", state, binding=target.binding, expected_version=0)


def rotating_server() -> tuple[list[str], object]:
    counter = itertools.count(1)
    presented: list[str] = []

    def respond(request: HttpRequest) -> HttpResponse:
        token = request.form_value("refresh_token")
        assert isinstance(token, Secret)
        presented.append(token.reveal())
        n = next(counter)
        return json_response(
            200,
            {
                "access_token": f"at-{n}",
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": f"rt-{n}",
            },
        )

    return presented, respond


async def test_200_concurrent_requests_cause_one_refresh(world: World) -> None:
    await seed(world, expires_in=-10)
    presented, respond = rotating_server()
    world.http.routes[TOKEN_URL] = respond  # type: ignore[assignment]
    world.http.delay = 0.01

    tokens = await asyncio.gather(*(world.refresher.access_token("smtp") for _ in range(200)))

    assert world.http.count(TOKEN_URL) == 1
    assert {t.reveal() for t in tokens} == {"at-1"}
    assert presented == ["rt-0"]
    state = (await world.store.load_token("smtp")).state
    assert isinstance(state, Acquired)
    assert state.refresh_token == Secret("rt-1")  # rotated token persisted
    assert ("token_refreshed", "smtp") in world.events


async def test_fresh_token_is_returned_without_a_request(world: World) -> None:
    await seed(world, expires_in=3000)
    assert (await world.refresher.access_token("smtp")).reveal() == "at-0"
    assert world.http.requests == []


async def test_a_response_without_refresh_token_keeps_the_old_one(world: World) -> None:
    await seed(world, expires_in=60)
    world.http.routes[TOKEN_URL] = lambda r: json_response(
        200, {"access_token": "at-new", "token_type": "Bearer", "expires_in": 3600}
    )
    assert (await world.refresher.access_token("smtp")).reveal() == "at-new"
    state = (await world.store.load_token("smtp")).state
    assert isinstance(state, Acquired)
    assert state.refresh_token == Secret("rt-0")


async def test_invalid_grant_makes_the_token_invalid_with_the_reason(world: World) -> None:
    await seed(world, expires_in=-1)
    world.http.routes[TOKEN_URL] = lambda r: json_response(
        400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    )
    with pytest.raises(TokenUnavailableError, match="invalid_grant"):
        await world.refresher.access_token("smtp")
    state = (await world.store.load_token("smtp")).state
    assert isinstance(state, Invalid)
    assert "expired or revoked" in str(state.reason)
    assert ("token_invalid", "smtp") in world.events


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_failure_keeps_the_token_and_schedules_a_retry(
    world: World, status: int
) -> None:
    await seed(world, expires_in=120)  # due (margin 600 s) but still usable
    world.http.routes[TOKEN_URL] = lambda r: json_response(status, {"error": "server_error"})
    assert (await world.refresher.access_token("smtp")).reveal() == "at-0"
    state = (await world.store.load_token("smtp")).state
    assert isinstance(state, Acquired)
    assert state.failures == 1
    assert state.retry_at is not None
    assert state.retry_at > world.clock.now()
    # Until retry_at, nobody asks the provider again.
    await world.refresher.access_token("smtp")
    assert world.http.count(TOKEN_URL) == 1


async def test_transient_failure_with_an_expired_token_raises_but_stays_acquired(
    world: World,
) -> None:
    await seed(world, expires_in=-5)
    world.http.routes[TOKEN_URL] = lambda r: json_response(
        503, {"error": "temporarily_unavailable"}
    )
    with pytest.raises(TransientOAuthError):
        await world.refresher.access_token("smtp")
    assert isinstance((await world.store.load_token("smtp")).state, Acquired)


async def test_token_bound_to_another_account_is_never_used(world: World) -> None:
    await seed(world, expires_in=3000)
    from service_world import smtp_setting

    await world.store.put_smtp(smtp_setting(account="someone-else@example.com"))
    with pytest.raises(TokenUnavailableError, match="no token"):
        await world.refresher.access_token("smtp")
    assert world.http.requests == []
