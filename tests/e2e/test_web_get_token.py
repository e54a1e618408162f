"""[Get Token] on the web page: the page under a real uvicorn, talked to over HTTP with httpx as a
browser would (cookies, CSRF tokens from the forms), the token from the sandbox authorization
server (approved through its control API; its sign-in page played with httpx). The service
carries the authorization: the device flow is completed by the scheduler beside the page."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox_support import DEFAULT_USER, Sandbox, ca_context
from tokenpost.accounts import Role
from tokenpost.secret import Secret
from tokenpost.settings.model import AuthMethod, Flow, Preset, Provider, Security, SmtpSetting
from tokenpost.tokens.state import Acquired, NotAcquired, WaitingForAuthorization
from tokenpost.web.app import create_app
from tokenpost.web.config import WebConfig
from tokenpost.web.server import Listen, start
from tokenpost.wiring import App, open_app

pytestmark = pytest.mark.slow

ADMIN, ADMIN_PASSWORD = "admin", "correct horse battery staple"
VIEWER, VIEWER_PASSWORD = "viewer", "viewer password 0123"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
USER_CODE = re.compile(r'<output class="user-code"[^>]*>([^<]+)</output>')


@dataclass
class Browser:
    """An httpx client that keeps its cookie and the CSRF token of the last form it saw."""

    http: httpx.AsyncClient
    csrf: str = ""

    async def get(self, path: str, **options: object) -> httpx.Response:
        return self._seen(await self.http.get(path, **options))  # type: ignore[arg-type]

    async def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        form = {"csrf": self.csrf, **(data or {})}
        return self._seen(await self.http.post(path, data=form))

    async def sign_in(self, name: str, password: str) -> None:
        await self.get("/login")
        answer = await self.post("/login", {"name": name, "password": password})
        assert answer.status_code == 303, answer.text
        await self.get("/")

    def _seen(self, response: httpx.Response) -> httpx.Response:
        found = CSRF.search(response.text)
        if found:
            self.csrf = html.unescape(found.group(1))
        return response


@dataclass
class Page:
    app: App
    url: str
    sandbox: Sandbox
    browsers: list[Browser] = field(default_factory=list)

    def browser(self) -> Browser:
        browser = Browser(httpx.AsyncClient(base_url=self.url, timeout=20))
        self.browsers.append(browser)
        return browser

    async def admin(self) -> Browser:
        browser = self.browser()
        await browser.sign_in(ADMIN, ADMIN_PASSWORD)
        return browser

    async def state(self) -> object:
        return (await self.app.store.load_token("smtp")).state

    def device_requests(self) -> int:
        return self.sandbox.control.stats().requests.get("device", 0)


@pytest.fixture
async def page(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Page]:
    """The page beside a running scheduler (as in `serve`), with an SMTP setting on the
    sandbox, an administrator and a viewer."""
    sandbox.control.config(device_interval=1)
    async with open_app(tmp_path / "home", {}) as app:
        await app.accounts.add(ADMIN, Role.ADMIN, Secret(ADMIN_PASSWORD))
        await app.accounts.add(VIEWER, Role.VIEWER, Secret(VIEWER_PASSWORD))
        await app.settings.put_provider(provider(sandbox, Flow.DEVICE))
        smtp = SmtpSetting(
            "smtp.example.test", 587, Security.STARTTLS, 30, "Scanner", "scanner@example.test",
            AuthMethod.OAUTH2, provider="sbx", account=DEFAULT_USER,
        )  # fmt: skip
        await app.settings.put_smtp(smtp)
        server = await start(
            create_app(app, WebConfig(secure_cookies=False)), Listen("127.0.0.1", 0)
        )
        scheduler = asyncio.create_task(app.scheduler().run())
        page = Page(app, server.url.rstrip("/"), sandbox)
        try:
            yield page
        finally:
            for browser in page.browsers:
                await browser.http.aclose()
            scheduler.cancel()
            await asyncio.gather(scheduler, return_exceptions=True)
            await server.stop()


def provider(sandbox: Sandbox, flow: Flow, redirect_uri: str | None = None) -> Provider:
    return Provider(
        "sbx", Preset.GENERIC, sandbox.clients.public, flow=flow, issuer=sandbox.issuer,
        scope=("mail.send", "offline_access"), ca_file=str(sandbox.ca_file),
        redirect_uri=redirect_uri,
    )  # fmt: skip


def sign_in_at_provider(sandbox: Sandbox, authorization_url: str) -> str:
    with httpx.Client(verify=ca_context(sandbox.ca_file), timeout=10) as client:
        answer = client.get(authorization_url)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


def authorization_url(body: str) -> str:
    found = re.search(r'<a class="button" href="([^"]+)" target="_blank"', body)
    assert found is not None, body
    return html.unescape(found.group(1))


async def until_acquired(page: Page, browser: Browser, timeout: float = 15) -> None:
    """Poll what live.js polls until the label reads Acquired."""
    async with asyncio.timeout(timeout):
        while True:
            live = (await browser.get("/live/status")).json()
            [smtp] = [s for s in live["settings"] if s["id"] == "smtp"]
            if smtp["state"] == "acquired":
                assert smtp["label"] == "Acquired"
                return
            await asyncio.sleep(0.3)


async def test_get_token_by_the_device_grant(page: Page) -> None:
    admin = await page.admin()
    status = await admin.get("/")
    assert 'href="/tokens/smtp/get">Get Token</a>' in status.text
    start_page = await admin.get("/tokens/smtp/get")
    assert 'action="/tokens/smtp/get"' in start_page.text
    assert isinstance(await page.state(), NotAcquired)  # looking starts nothing

    started = await admin.post("/tokens/smtp/get")
    assert (started.status_code, started.headers["location"]) == (303, "/tokens/smtp/get")
    shown = await admin.get("/tokens/smtp/get")
    code = USER_CODE.search(shown.text)
    assert code is not None
    state = await page.state()
    assert isinstance(state, WaitingForAuthorization)
    assert code.group(1) == state.flow.user_code  # type: ignore[union-attr]
    assert "<svg" in shown.text  # the QR code, inline
    assert 'data-live="expiry"' in shown.text  # the countdown live.js keeps current
    assert 'data-live-status="/live/status"' in shown.text  # and the label
    assert "Waiting for authorization" in shown.text
    assert "style=" not in shown.text  # the CSP allows no inline style
    scripts = re.findall(r"<script[^>]*>", shown.text)
    assert scripts == ['<script src="/static/live.js" defer>']  # no inline script
    assert "unsafe-inline" not in shown.headers["content-security-policy"]

    # A second click, and a reload, show the pending one: no second device code.
    requests = page.device_requests()
    await admin.post("/tokens/smtp/get")
    again = await admin.get("/tokens/smtp/get")
    assert USER_CODE.search(again.text).group(1) == code.group(1)  # type: ignore[union-attr]
    assert page.device_requests() == requests

    await asyncio.to_thread(page.sandbox.control.approve, code.group(1), user=DEFAULT_USER)
    await until_acquired(page, admin)
    assert isinstance(await page.state(), Acquired)


async def test_cancel_keeps_the_working_token(page: Page) -> None:
    admin = await page.admin()
    await admin.post("/tokens/smtp/get")
    code = USER_CODE.search((await admin.get("/tokens/smtp/get")).text)
    assert code is not None
    await asyncio.to_thread(page.sandbox.control.approve, code.group(1), user=DEFAULT_USER)
    await until_acquired(page, admin)
    before = await page.state()

    await admin.post("/tokens/smtp/get")
    shown = await admin.get("/tokens/smtp/get")
    assert "In force until the new token arrives: Acquired" in shown.text
    cancelled = await admin.post("/tokens/smtp/cancel")
    assert cancelled.status_code == 303
    status = await admin.get("/")
    assert "Authorization cancelled. The previous token stays in force (valid until" in status.text
    assert await page.state() == before


async def test_a_viewer_cannot_get_a_token(page: Page) -> None:
    viewer = page.browser()
    await viewer.sign_in(VIEWER, VIEWER_PASSWORD)
    assert "/tokens/smtp/get" not in (await viewer.get("/")).text
    assert (await viewer.get("/tokens/smtp/get")).status_code == 403
    for action in ("get", "cancel", "finish"):
        assert (await viewer.post(f"/tokens/smtp/{action}")).status_code == 403
    assert isinstance(await page.state(), NotAcquired)
    admin = await page.admin()
    admin.csrf = "not-the-token"
    assert (await admin.post("/tokens/smtp/get")).status_code == 403
    assert page.device_requests() == 0
    signed_out = page.browser()
    answer = await signed_out.get("/tokens/smtp/get")
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")


async def test_german(page: Page) -> None:
    admin = await page.admin()
    await admin.post("/tokens/smtp/get")
    shown = await admin.get("/tokens/smtp/get", headers={"Accept-Language": "de"})
    assert "Dieses Gerät autorisieren" in shown.text
    assert "Warten auf Autorisierung" in shown.text
    assert "Token abrufen" in (await admin.get("/", headers={"Accept-Language": "de"})).text


async def test_browser_flow_with_the_pasted_address(page: Page) -> None:
    await page.app.settings.put_provider(provider(page.sandbox, Flow.BROWSER))
    admin = await page.admin()
    await admin.post("/tokens/smtp/get")
    shown = await admin.get("/tokens/smtp/get")
    assert 'action="/tokens/smtp/finish"' in shown.text
    address = sign_in_at_provider(page.sandbox, authorization_url(shown.text))
    code = parse_qs(urlsplit(address).query)["code"][0]

    wrong = address.replace("state=", "state=x")
    refused = await admin.post("/tokens/smtp/finish", {"address": wrong})
    assert refused.status_code == 400
    assert "state mismatch" in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert code not in refused.text
    assert isinstance(await page.state(), WaitingForAuthorization)

    finished = await admin.post("/tokens/smtp/finish", {"address": address})
    assert finished.status_code == 303
    status = await admin.get("/")
    assert "The token of smtp was acquired (valid until" in status.text
    assert isinstance(await page.state(), Acquired)
    assert code not in status.text


async def test_the_registered_redirect_uri_is_this_page(page: Page) -> None:
    """The provider sends the browser back to the page's own /oauth/callback: without the
    session cookie (SameSite=Strict, from the provider's site) the page has the browser load
    the address again from here, then finishes the flow."""
    callback = page.url + "/oauth/callback"
    page.sandbox.control.config(redirect_uris=["http://127.0.0.1/oauth/callback"])
    await page.app.settings.put_provider(provider(page.sandbox, Flow.BROWSER, callback))
    admin = await page.admin()
    await admin.post("/tokens/smtp/get")
    shown = await admin.get("/tokens/smtp/get")
    address = sign_in_at_provider(page.sandbox, authorization_url(shown.text))
    assert address.startswith(callback + "?")
    path = address.removeprefix(page.url)

    arriving = page.browser()  # the redirect from the provider's site: no cookie sent
    bounced = await arriving.get(path, headers={"Sec-Fetch-Site": "cross-site"})
    assert bounced.status_code == 200
    assert bounced.headers["refresh"] == "0; url=" + address
    assert isinstance(await page.state(), WaitingForAuthorization)
    refused = await arriving.get(path, headers={"Sec-Fetch-Site": "same-origin"})
    assert refused.status_code == 403  # signed out: not finished, still pending
    assert isinstance(await page.state(), WaitingForAuthorization)

    finished = await admin.get(path, headers={"Sec-Fetch-Site": "same-origin"})
    assert finished.status_code == 303
    assert isinstance(await page.state(), Acquired)
    replayed = await admin.get(path)
    assert replayed.status_code == 400
    assert "belongs to no pending authorization" in replayed.text
