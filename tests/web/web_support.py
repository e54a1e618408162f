"""The web page under a real uvicorn on 127.0.0.1, talked to over real HTTP with httpx.

`WebPage` signs in like a browser: it keeps the session cookie itself (httpx's cookie jar, like
the standard library's, never sends a Secure cookie over plain http, which browsers do on
loopback) and reads the CSRF token from the forms it is shown.
"""

from __future__ import annotations

import html
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from fakes import FakeClock
from tokenpost.accounts import Role
from tokenpost.secret import Secret
from tokenpost.services.targets import load_target
from tokenpost.settings.model import (
    AuthMethod,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
)
from tokenpost.tokens.state import Acquired, TokenState
from tokenpost.web.app import create_app
from tokenpost.web.config import WebConfig
from tokenpost.web.server import Listen, WebServer, start
from tokenpost.web.sessions import COOKIE
from tokenpost.wiring import App, open_app

ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery staple"
VIEWER = "viewer"
VIEWER_PASSWORD = "viewer password 0123"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Served:
    app: App
    server: WebServer
    url: str
    ca_file: str | None = None

    def client(self, **options: Any) -> WebPage:
        verify: Any = True
        if self.ca_file is not None:
            verify = ssl.create_default_context(cafile=self.ca_file)
        return WebPage(httpx.AsyncClient(base_url=self.url, verify=verify, **options))


@dataclass
class WebPage:
    http: httpx.AsyncClient
    session: str | None = None
    csrf: str = ""
    pages: list[str] = field(default_factory=list)  # every body it was shown

    async def get(self, path: str, **options: Any) -> httpx.Response:
        return self._seen(await self.http.get(path, headers=self._headers(options), **options))

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, **options: Any
    ) -> httpx.Response:
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.csrf)
        response = await self.http.post(path, data=form, headers=self._headers(options), **options)
        return self._seen(response)

    async def sign_in(self, name: str, password: str) -> httpx.Response:
        """Log in through the form; on success the first page is loaded too (the new
        session's CSRF token). Returns the login's own answer."""
        await self.get("/login")
        response = await self.post("/login", {"name": name, "password": password})
        if response.status_code == 303:
            await self.get(response.headers["location"])
        return response

    def _headers(self, options: dict[str, Any]) -> dict[str, str]:
        headers = dict(options.pop("headers", {}) or {})
        if self.session is not None:
            headers.setdefault("Cookie", f"{COOKIE}={self.session}")
        return headers

    def _seen(self, response: httpx.Response) -> httpx.Response:
        for value in response.headers.get_list("set-cookie"):
            name, _, rest = value.partition("=")
            if name == COOKIE:
                cookie = rest.split(";", 1)[0]
                self.session = cookie.strip('"') or None
        found = _CSRF.search(response.text)
        if found:
            self.csrf = html.unescape(found.group(1))
        self.pages.append(response.text)
        return response

    async def aclose(self) -> None:
        await self.http.aclose()


@asynccontextmanager
async def served(
    home: Path,
    config: WebConfig | None = None,
    *,
    tls: tuple[str, str, str] | None = None,
    clock: FakeClock | None = None,
) -> AsyncIterator[Served]:
    """An opened App with an administrator and a viewer, its web page on a free port."""
    async with open_app(home, {}, clock=clock) as app:
        await app.accounts.add(ADMIN, Role.ADMIN, Secret(ADMIN_PASSWORD))
        await app.accounts.add(VIEWER, Role.VIEWER, Secret(VIEWER_PASSWORD))
        api = create_app(app, config or WebConfig())
        cert, key, ca = tls if tls is not None else (None, None, None)
        server = await start(api, Listen("127.0.0.1", 0), tls_cert=cert, tls_key=key)
        try:
            yield Served(app, server, server.url, ca)
        finally:
            await server.stop()


# -- settings and tokens, as an administrator would have made them ---------------------------------

CLIENT_SECRET = "client-secret-Zq8v0LX2"
MAIL_PASSWORD = "mail-password-Hx71pQ3"
ACCESS_TOKEN = "access-token-Yt5KcW9m"
REFRESH_TOKEN = "refresh-token-Jb2NsR4e"


async def define_settings(app: App, *, account: str = "scanner@example.test") -> None:
    """A Microsoft provider with a client secret, the SMTP setting on it and a POP setting with
    a password."""
    await app.settings.put_provider(
        Provider(
            name="m365",
            preset=Preset.MICROSOFT,
            client_id="00000000-0000-0000-0000-000000000000",
            client_secret=Secret(CLIENT_SECRET),
            tenant="contoso.onmicrosoft.com",
        )
    )
    await app.settings.put_smtp(
        SmtpSetting(
            server="smtp.example.test",
            port=587,
            security=Security.STARTTLS,
            timeout=30,
            sender_name="Scanner",
            sender_address="scanner@example.test",
            auth=AuthMethod.OAUTH2,
            provider="m365",
            account=account,
        )
    )
    await app.settings.put_pop(
        PopSetting(
            name="fax",
            server="pop.example.test",
            port=995,
            security=Security.TLS,
            check_interval=300,
            auth=AuthMethod.PASSWORD,
            deliver_to="/var/spool/fax",
            account="fax@example.test",
            password=Secret(MAIL_PASSWORD),
        )
    )


async def give_token(app: App, setting_id: str, state: TokenState) -> None:
    """Store `state` as the setting's token, bound to the setting as it is."""
    target = await load_target(app.store, setting_id)
    record = await app.store.load_token(setting_id)
    await app.store.save_token(
        setting_id, state, binding=target.binding, expected_version=record.version
    )


def acquired(now: float) -> Acquired:
    return Acquired(
        access_token=Secret(ACCESS_TOKEN),
        expires_at=now + 3600,
        obtained_at=now - 60,
        refresh_token=Secret(REFRESH_TOKEN),
    )
