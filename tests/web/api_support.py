"""The JSON API under a real uvicorn on 127.0.0.1, over real HTTP: an opened App (real SQLite
store), an administrator and a viewer (accounts and API tokens), and the scheduler beside the
page as in `serve` (it carries device flows begun by the API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from web_support import ADMIN, ADMIN_PASSWORD, VIEWER, VIEWER_PASSWORD, WebPage

from tokenpost.accounts import Role
from tokenpost.secret import Secret
from tokenpost.web.app import create_app
from tokenpost.web.config import WebConfig
from tokenpost.web.server import Listen, WebServer, start
from tokenpost.wiring import App, open_app


@dataclass
class Api:
    """The served page, its API tokens, and every answer any client was given (to search them
    for secrets)."""

    app: App
    server: WebServer
    url: str
    admin_token: str
    viewer_token: str
    answers: list[httpx.Response] = field(default_factory=list)
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def client(self, token: str | None = None, **headers: str) -> httpx.AsyncClient:
        """An HTTP client sending `token` as its bearer credential (none: no credential)."""
        sent = dict(headers)
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"

        async def keep(response: httpx.Response) -> None:
            await response.aread()
            self.answers.append(response)

        client = httpx.AsyncClient(
            base_url=self.url, headers=sent, timeout=30, event_hooks={"response": [keep]}
        )
        self.clients.append(client)
        return client

    def admin(self, **headers: str) -> httpx.AsyncClient:
        return self.client(self.admin_token, **headers)

    def viewer(self, **headers: str) -> httpx.AsyncClient:
        return self.client(self.viewer_token, **headers)

    async def page(self, name: str = ADMIN) -> WebPage:
        """A browser signed in to the web page (session cookie and CSRF token)."""
        page = WebPage(httpx.AsyncClient(base_url=self.url, timeout=30))
        password = ADMIN_PASSWORD if name == ADMIN else VIEWER_PASSWORD
        response = await page.sign_in(name, password)
        assert response.status_code == 303, response.text
        self.clients.append(page.http)
        return page


@asynccontextmanager
async def served_api(
    home: Path,
    environ: Mapping[str, str] | None = None,
    *,
    config: WebConfig | None = None,
    scheduler: bool = True,
    **options: Any,
) -> AsyncIterator[Api]:
    async with open_app(home, dict(environ or {}), **options) as app:
        await app.accounts.add(ADMIN, Role.ADMIN, Secret(ADMIN_PASSWORD))
        await app.accounts.add(VIEWER, Role.VIEWER, Secret(VIEWER_PASSWORD))
        _info, admin_token = await app.accounts.create_api_token("ci-bot", Role.ADMIN)
        _info, viewer_token = await app.accounts.create_api_token("dashboard", Role.VIEWER)
        server = await start(
            create_app(app, config or WebConfig(secure_cookies=False)), Listen("127.0.0.1", 0)
        )
        task = asyncio.create_task(app.scheduler().run()) if scheduler else None
        api = Api(app, server, server.url.rstrip("/"), admin_token.reveal(), viewer_token.reveal())
        try:
            yield api
        finally:
            for client in api.clients:
                await client.aclose()
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await server.stop()


def error_code(response: httpx.Response) -> str:
    """The error code of an API answer (fails when the answer is not the API's error shape)."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "field", "fix"} <= set(body["error"]), body
    return str(body["error"]["code"])
