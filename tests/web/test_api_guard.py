"""Who may call which route of the JSON API. The routes are read from the application itself,
so a route added later is checked too: without a credential, with a token that is not one (or
was revoked), as a viewer (token or session), and as an administrator with a session but without
its CSRF token or from another site: refused (401 or 403), in the API's error shape. A viewer
reads; an administrator with a token (no CSRF token needed) or a full session reaches every
route. Nothing here acts on a real setting: the administrator's requests name settings that do
not exist, so no provider or mail server is ever called."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from api_support import Api, error_code, served_api
from test_web_guard import api_routes
from web_support import VIEWER, acquired, define_settings, give_token

from tokenpost.web.app import create_app
from tokenpost.web.config import WebConfig
from tokenpost.web.sessions import COOKIE
from tokenpost.wiring import open_app

PREFIX = "/api/v1"
SAMPLES = {"setting_id": "pop:nosuch", "name": "nosuch", "path": "nosuch"}
SAFE = {"GET", "HEAD", "OPTIONS"}
REFUSED = {401, 403}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with served_api(tmp_path / "home", scheduler=False) as running:
        await define_settings(running.app)
        await give_token(running.app, "smtp", acquired(running.app.clock.now()))
        yield running


def routes(api: Api) -> list[tuple[str, str]]:
    """(method, path with sample parameters) of every route of the API, the answer for other
    paths under /api/v1 included."""
    app = create_app(api.app, WebConfig())
    found = sorted(
        (method, route.path.replace(":path}", "}").format(**SAMPLES))
        for route in api_routes(app.routes)
        if route.path.startswith(PREFIX + "/")
        for method in route.methods
    )
    assert len({path for _m, path in found}) >= 12  # the enumeration itself works
    assert ("DELETE", f"{PREFIX}/tokens/pop:nosuch/authorization") in found
    return found


async def call(
    client: httpx.AsyncClient, method: str, path: str, **options: object
) -> httpx.Response:
    body = {} if method in {"PUT", "POST", "PATCH"} else None
    response = await client.request(method, path, json=body, **options)  # type: ignore[arg-type]
    assert response.status_code < 500, (method, path, response.text)
    return response


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    if response.request.method != "HEAD":  # no body
        assert error_code(response) == code
    assert response.headers["cache-control"] == "no-store"
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


async def test_without_a_credential_every_route_is_unauthorized(api: Api) -> None:
    clients = {
        "none": api.client(),
        "not a token": api.client("tpat_" + "A" * 43),
        "another scheme": api.client(Authorization="Basic YWRtaW46cGFzc3dvcmQ="),
        "bearer without a token": api.client(Authorization="Bearer"),
    }
    for method, path in routes(api):
        for client in clients.values():
            refused(await call(client, method, path), 401, "unauthorized")


async def test_a_revoked_token_is_unauthorized(api: Api) -> None:
    client = api.admin()
    assert (await client.get(f"{PREFIX}/status")).status_code == 200
    await api.app.accounts.revoke_api_token("ci-bot")
    for method, path in routes(api):
        refused(await call(client, method, path), 401, "unauthorized")


async def test_a_token_revoked_by_another_process_is_unauthorized(api: Api) -> None:
    client = api.admin()
    assert (await client.get(f"{PREFIX}/status")).status_code == 200
    async with open_app(api.app.home, {}) as other:  # `tokenpost admin token revoke ci-bot`
        await other.accounts.revoke_api_token("ci-bot")
    refused(await client.get(f"{PREFIX}/status"), 401, "unauthorized")


async def test_a_viewer_reads_and_changes_nothing(api: Api) -> None:
    before = await api.app.settings.export()
    token = api.viewer()
    page = await api.page(VIEWER)
    session = {"Cookie": f"{COOKIE}={page.session}", "X-CSRF-Token": page.csrf}
    for method, path in routes(api):
        by_token = await call(token, method, path)
        by_session = await call(page.http, method, path, headers=session)
        for response in (by_token, by_session):
            if method in SAFE:
                assert response.status_code not in REFUSED, (method, path, response.text)
            else:
                refused(response, 403, "forbidden")
                assert "only an administrator" in response.text
    assert await api.app.settings.export() == before
    assert (await api.app.store.load_token("smtp")).state.id.value == "acquired"


async def test_a_session_changes_only_with_its_csrf_token_from_this_site(api: Api) -> None:
    page = await api.page()
    cookie = {"Cookie": f"{COOKIE}={page.session}"}
    with_token = {**cookie, "X-CSRF-Token": page.csrf}
    for method, path in routes(api):
        if method in SAFE:
            response = await call(page.http, method, path, headers=cookie)
            assert response.status_code not in REFUSED, (method, path)
            continue
        refused(await call(page.http, method, path, headers=cookie), 403, "forbidden")
        wrong = {**cookie, "X-CSRF-Token": "not-the-token"}
        refused(await call(page.http, method, path, headers=wrong), 403, "forbidden")
        evil = {**with_token, "Origin": "https://evil.example"}
        refused(await call(page.http, method, path, headers=evil), 403, "forbidden")
        response = await call(page.http, method, path, headers=with_token)
        assert response.status_code not in REFUSED, (method, path, response.text)


async def test_an_administrators_token_reaches_every_route_without_a_csrf_token(api: Api) -> None:
    # No ambient credential: a browser never adds an Authorization header by itself, so neither
    # a CSRF token nor the origin matters.
    client = api.admin(Origin="https://elsewhere.example")
    for method, path in routes(api):
        response = await call(client, method, path)
        assert response.status_code not in REFUSED, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/json"), path


async def test_a_token_and_a_cookie_together_are_judged_by_the_token(api: Api) -> None:
    page = await api.page()  # an administrator's session…
    client = api.client("tpat_wrong", Cookie=f"{COOKIE}={page.session}", **{
        "X-CSRF-Token": page.csrf
    })  # fmt: skip
    refused(await client.get(f"{PREFIX}/status"), 401, "unauthorized")
    viewer = api.viewer(Cookie=f"{COOKIE}={page.session}", **{"X-CSRF-Token": page.csrf})
    refused(await viewer.delete(f"{PREFIX}/tokens/smtp"), 403, "forbidden")
    assert (await api.app.store.load_token("smtp")).state.id.value == "acquired"
