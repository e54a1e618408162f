"""The shared mail-authentication rules: encryption policy and refresh-once-on-refusal."""

from __future__ import annotations

import pytest
from service_world import TOKEN_URL, World

from fakes import json_response
from tokenpost.errors import MailAuthError, MailPolicyError, PlaintextRefusedError
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.secret import Secret
from tokenpost.services.mailauth import authenticate_with_refresh, is_loopback, require_encryption
from tokenpost.services.refresh import TokenUnavailableError
from tokenpost.services.targets import load_target
from tokenpost.settings.model import AuthMethod, Security
from tokenpost.tokens.state import Acquired, Invalid


async def seed_token(world: World, *, age: float) -> None:
    target = await load_target(world.store, "smtp")
    now = world.clock.now()
    state = Acquired(
        access_token=Secret("at-old"),
        expires_at=now + 3000,
        obtained_at=now - age,
        refresh_token=Secret("rt-old"),
    )
    await world.store.save_token("smtp", state, binding=target.binding, expected_version=0)


def grant_new_token(request: HttpRequest) -> HttpResponse:
    return json_response(
        200,
        {"access_token": "at-new", "token_type": "Bearer", "expires_in": 3600},
    )


class MailServer:
    """Accepts only the tokens in `accepted`; records every token presented."""

    def __init__(self, *accepted: str, policy: bool = False) -> None:
        self.accepted = set(accepted)
        self.policy = policy
        self.presented: list[str] = []

    async def authenticate(self, token: Secret) -> str:
        self.presented.append(token.reveal())
        if self.policy:
            raise MailPolicyError("refused by policy", fix="enable SMTP AUTH", reply="535 5.7.139")
        if token.reveal() not in self.accepted:
            raise MailAuthError("refused", reply="535 5.7.3 Authentication unsuccessful")
        return "235"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("10.0.0.1", False),
        ("smtp.example", False),
        ("localhost.example", False),
    ],
)
def test_loopback_is_recognised_without_name_lookup(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_tls_and_unauthenticated_plaintext_are_allowed() -> None:
    require_encryption(Security.STARTTLS, "smtp.example", AuthMethod.OAUTH2, allow_plaintext=False)
    require_encryption(Security.TLS, "smtp.example", AuthMethod.PASSWORD, allow_plaintext=False)
    require_encryption(Security.NONE, "smtp.example", AuthMethod.NONE, allow_plaintext=False)


def test_plaintext_to_a_remote_server_is_refused_even_when_allowed() -> None:
    with pytest.raises(PlaintextRefusedError, match=r"smtp\.example unencrypted"):
        require_encryption(Security.NONE, "smtp.example", AuthMethod.OAUTH2, allow_plaintext=True)


def test_plaintext_to_loopback_needs_the_explicit_flag() -> None:
    with pytest.raises(PlaintextRefusedError, match="--allow-plaintext"):
        require_encryption(Security.NONE, "127.0.0.1", AuthMethod.PASSWORD, allow_plaintext=False)
    require_encryption(Security.NONE, "127.0.0.1", AuthMethod.OAUTH2, allow_plaintext=True)


async def test_accepted_token_is_used_without_refreshing(world: World) -> None:
    await seed_token(world, age=3000)
    server = MailServer("at-old")
    outcome = await authenticate_with_refresh(
        world.refresher, world.clock, "smtp", server.authenticate
    )
    assert outcome == "235"
    assert server.presented == ["at-old"]
    assert world.http.requests == []


async def test_stale_refused_token_is_refreshed_once_and_retried(world: World) -> None:
    await seed_token(world, age=3000)
    world.http.routes[TOKEN_URL] = grant_new_token  # type: ignore[assignment]
    server = MailServer("at-new")
    outcome = await authenticate_with_refresh(
        world.refresher, world.clock, "smtp", server.authenticate
    )
    assert outcome == "235"
    assert server.presented == ["at-old", "at-new"]
    assert len(world.http.requests) == 1
    assert ("token_refreshed", "smtp") in world.events


async def test_a_fresh_token_is_not_refreshed_on_refusal(world: World) -> None:
    await seed_token(world, age=10)
    server = MailServer()
    with pytest.raises(MailAuthError):
        await authenticate_with_refresh(world.refresher, world.clock, "smtp", server.authenticate)
    assert server.presented == ["at-old"]
    assert world.http.requests == []


async def test_refused_twice_raises_and_keeps_the_new_token(world: World) -> None:
    await seed_token(world, age=3000)
    world.http.routes[TOKEN_URL] = grant_new_token  # type: ignore[assignment]
    server = MailServer()
    with pytest.raises(MailAuthError):
        await authenticate_with_refresh(world.refresher, world.clock, "smtp", server.authenticate)
    assert server.presented == ["at-old", "at-new"]
    state = (await world.store.load_token("smtp")).state
    assert isinstance(state, Acquired)
    assert state.access_token == Secret("at-new")


async def test_policy_refusal_is_never_retried(world: World) -> None:
    await seed_token(world, age=3000)
    server = MailServer(policy=True)
    with pytest.raises(MailPolicyError):
        await authenticate_with_refresh(world.refresher, world.clock, "smtp", server.authenticate)
    assert server.presented == ["at-old"]
    assert world.http.requests == []
    assert isinstance((await world.store.load_token("smtp")).state, Acquired)


async def test_revoked_grant_makes_the_token_invalid_after_one_refresh(world: World) -> None:
    await seed_token(world, age=3000)
    world.http.routes[TOKEN_URL] = lambda request: json_response(  # type: ignore[assignment]
        400, {"error": "invalid_grant", "error_description": "revoked"}
    )
    server = MailServer()
    with pytest.raises(TokenUnavailableError, match=r"invalid_grant|revoked"):
        await authenticate_with_refresh(world.refresher, world.clock, "smtp", server.authenticate)
    assert server.presented == ["at-old"]
    assert len(world.http.requests) == 1
    assert isinstance((await world.store.load_token("smtp")).state, Invalid)


async def test_transient_refresh_failure_does_not_retry_the_same_token(world: World) -> None:
    await seed_token(world, age=3000)
    world.http.routes[TOKEN_URL] = lambda request: json_response(  # type: ignore[assignment]
        503, {"error": "temporarily_unavailable"}
    )
    server = MailServer()
    with pytest.raises(MailAuthError):
        await authenticate_with_refresh(world.refresher, world.clock, "smtp", server.authenticate)
    assert server.presented == ["at-old"]
    assert isinstance((await world.store.load_token("smtp")).state, Acquired)


async def test_renew_after_another_caller_refreshed_returns_the_successor(world: World) -> None:
    await seed_token(world, age=3000)
    world.http.routes[TOKEN_URL] = grant_new_token  # type: ignore[assignment]
    first = await world.refresher.renew("smtp", rejected=Secret("at-old"))
    second = await world.refresher.renew("smtp", rejected=Secret("at-old"))
    assert first.value == second.value == Secret("at-new")
    assert len(world.http.requests) == 1
