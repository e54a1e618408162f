"""Every exchange with a provider goes out with that provider's CA file and proxy: device
authorization, token polling, refresh, revocation and discovery."""

from __future__ import annotations

import asyncio

from service_world import DEVICE_URL, REVOKE_URL, TOKEN_URL, World, provider

from fakes import json_response
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.settings.network import Network

CA_FILE = "/etc/tokenpost/provider-ca.pem"
PROXY = "http://proxy.example:3128"
TOKEN = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 60, "refresh_token": "rt-1"}
DEVICE = {
    "device_code": "dc-1",
    "user_code": "ABCD-EFGH",
    "verification_uri": "https://as.example/activate",
    "expires_in": 600,
    "interval": 5,
}


async def test_obtain_refresh_and_revoke_use_the_providers_network(world: World) -> None:
    await world.store.put_provider(provider(ca_file=CA_FILE, proxy=PROXY))
    world.http.routes[DEVICE_URL] = lambda r: json_response(200, DEVICE)
    world.http.routes[TOKEN_URL] = lambda r: json_response(200, TOKEN)
    world.http.routes[REVOKE_URL] = lambda r: json_response(200, {})

    await world.authorizer.obtain("smtp", lambda p: asyncio.sleep(0))
    world.clock.t += 3600  # the token (60 s) is due
    await world.refresher.access_token("smtp")
    await world.deleter.delete("smtp")

    urls = [request.url for request in world.http.requests]
    assert urls == [DEVICE_URL, TOKEN_URL, TOKEN_URL, REVOKE_URL]
    assert world.http.networks == [Network(CA_FILE, PROXY)] * 4


async def test_discovery_uses_the_providers_network(world: World) -> None:
    issuer = "https://login.example"
    found = provider(
        issuer=issuer,
        token_endpoint=None,
        device_authorization_endpoint=None,
        authorization_endpoint=None,
        revocation_endpoint=None,
        ca_file=CA_FILE,
        proxy=PROXY,
    )
    metadata = {"issuer": issuer, "token_endpoint": issuer + "/token"}
    world.http.routes[issuer + "/.well-known/oauth-authorization-server"] = lambda r: json_response(
        200, metadata
    )

    endpoints = await EndpointResolver(world.http).resolve(found)

    assert endpoints.token == issuer + "/token"
    assert world.http.networks == [Network(CA_FILE, PROXY)]


async def test_a_provider_without_its_own_leaves_both_to_the_home(world: World) -> None:
    world.http.routes[DEVICE_URL] = lambda r: json_response(200, DEVICE)
    world.http.routes[TOKEN_URL] = lambda r: json_response(200, TOKEN)

    await world.authorizer.obtain("smtp", lambda p: asyncio.sleep(0))

    assert world.http.networks == [Network(None, None)] * 2
