"""Security headers on every response, HTML escaped wherever stored text is shown, the login
lockout per account and per address, and no secret in any page or log line."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from test_web_guard import pages
from web_support import (
    ACCESS_TOKEN,
    ADMIN,
    ADMIN_PASSWORD,
    CLIENT_SECRET,
    MAIL_PASSWORD,
    REFRESH_TOKEN,
    VIEWER,
    Served,
    WebPage,
    acquired,
    define_settings,
    give_token,
    served,
)

from fakes import FakeClock
from tokenpost.text import Text
from tokenpost.tokens.state import Invalid
from tokenpost.web.config import WebConfig
from tokenpost.web.headers import CSP
from tokenpost.web.throttle import LockoutPolicy

HEADERS = {
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


def test_the_policy_allows_no_inline_script() -> None:
    assert "script-src 'self';" in CSP
    assert "unsafe-inline" not in CSP
    assert "frame-ancestors 'none'" in CSP


async def test_security_headers_on_every_response(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    paths = [*pages(site), "/static/tokenpost.css", "/static/live.js", "/no-such-page"]
    for path in paths:
        response = await admin.get(path)
        for name, value in HEADERS.items():
            assert response.headers.get(name) == value, (path, name)
        static = path.startswith("/static/")
        assert response.headers["cache-control"] == ("no-cache" if static else "no-store"), path
    refused = await admin.post("/alerts", csrf=False)
    assert refused.status_code == 403
    assert refused.headers["content-security-policy"] == CSP


async def test_pages_have_no_inline_script_or_style(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    for path in pages(site):
        text = (await admin.get(path)).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert "<style" not in text
        assert " style=" not in text
        assert " on" + "click=" not in text


async def test_html_in_stored_text_is_escaped(site: Served, admin: WebPage) -> None:
    evil = "<script>alert(1)</script>"
    await define_settings(site.app, account=f"x{evil}@example.test")
    reason = Text.verbatim(f"the provider said {evil}")
    await give_token(site.app, "smtp", Invalid(reason, since=site.app.clock.now()))
    for path in ("/", "/settings/smtp", "/tokens/smtp/delete"):
        text = (await admin.get(path)).text
        assert evil not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path


# -- lockout -------------------------------------------------------------------------------------


async def _fail(page: WebPage, name: str, password: str = "wrong password 99") -> int:  # noqa: S107
    await page.get("/login")
    return (await page.post("/login", {"name": name, "password": password})).status_code


async def test_repeated_failures_lock_the_account(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    policy = LockoutPolicy(per_account=3, per_address=100, window_s=900, lock_s=900)
    caplog.set_level(logging.INFO, logger="tokenpost")
    async with served(tmp_path / "home", WebConfig(lockout=policy), clock=clock) as site:
        page = site.client()
        try:
            assert [await _fail(page, ADMIN) for _ in range(3)] == [401, 401, 401]
            # Locked: even the right password is refused, without being checked.
            assert await _fail(page, ADMIN, ADMIN_PASSWORD) == 429
            assert await _fail(page, "Admin", ADMIN_PASSWORD) == 429  # one counter per name
            assert "Too many failed logins" in page.pages[-1]
            # Another account from the same address is not locked.
            assert (await page.sign_in(VIEWER, "viewer password 0123")).status_code == 303
            clock.t += 901
            other = site.client()
            assert (await other.sign_in(ADMIN, ADMIN_PASSWORD)).status_code == 303
            await other.aclose()
        finally:
            await page.aclose()
    lockouts = [r.getMessage() for r in caplog.records if "too many failed logins" in r.msg]
    assert lockouts == ["web login: too many failed logins for account 'admin'; locked for 15 min"]
    assert not any(ADMIN_PASSWORD in r.getMessage() for r in caplog.records)


async def test_repeated_failures_lock_the_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = LockoutPolicy(per_account=100, per_address=4, window_s=900, lock_s=900)
    caplog.set_level(logging.INFO, logger="tokenpost")
    async with served(tmp_path / "home", WebConfig(lockout=policy), clock=FakeClock()) as site:
        page = site.client()
        try:
            codes = [await _fail(page, f"guess{n}") for n in range(4)]
            assert codes == [401] * 4
            assert await _fail(page, ADMIN, ADMIN_PASSWORD) == 429
        finally:
            await page.aclose()
    assert any("from address '127.0.0.1'; locked" in r.getMessage() for r in caplog.records)


def test_the_default_lockout_is_5_per_account_and_20_per_address_in_15_minutes() -> None:
    policy = LockoutPolicy()
    assert (policy.per_account, policy.per_address) == (5, 20)
    assert policy.window_s == policy.lock_s == 900


# -- secrets ---------------------------------------------------------------------------------------


async def test_no_secret_in_any_page_or_log_line(
    site: Served, admin: WebPage, viewer: WebPage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    for page in (admin, viewer):
        for path in pages(site):
            await page.get(path.replace("{name}", "fax"))
        await page.get("/providers/m365")
        await page.get("/settings/pop/fax")
        await page.get("/live/status")
    # A save that keeps the stored secrets, and one that fails validation.
    form = {"preset": "microsoft", "client_id": "00000000-0000-0000-0000-000000000000"}
    await admin.post("/providers/m365", {**form, "tenant": "contoso.onmicrosoft.com"})
    await admin.post("/providers/m365", {**form, "tenant": "not a tenant"})
    secrets = (CLIENT_SECRET, MAIL_PASSWORD, ACCESS_TOKEN, REFRESH_TOKEN, ADMIN_PASSWORD)
    shown = "\n".join(admin.pages + viewer.pages)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in shown
        assert secret not in logged
    stored = await site.app.store.get_provider("m365")
    assert stored is not None
    assert stored.client_secret is not None
    assert stored.client_secret.reveal() == CLIENT_SECRET  # kept: the field was left empty
