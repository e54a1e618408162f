"""Signing in and out: the session cookie, its rotation, its end (logout, idle, the account
removed or changed), over real HTTP against the page under uvicorn."""

from __future__ import annotations

from web_support import ADMIN, ADMIN_PASSWORD, VIEWER, Served, WebPage

from fakes import FakeClock
from tokenpost.accounts import Role
from tokenpost.secret import Secret
from tokenpost.web.sessions import COOKIE
from tokenpost.wiring import open_app


async def test_a_page_without_a_session_leads_to_the_login(anonymous: WebPage) -> None:
    response = await anonymous.get("/settings/smtp")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    login = await anonymous.get("/login")
    assert login.status_code == 200
    assert 'name="password"' in login.text


async def test_login_sets_a_new_secure_session_cookie(anonymous: WebPage) -> None:
    await anonymous.get("/login")
    before = anonymous.session
    assert before is not None  # the login form's own (anonymous) session, for its CSRF token
    response = await anonymous.post("/login", {"name": ADMIN, "password": ADMIN_PASSWORD})
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for attribute in ("HttpOnly", "Secure", "Path=/", "SameSite=strict"):
        assert attribute.lower() in cookie.lower()
    assert anonymous.session not in (None, before)  # rotated: no session fixation
    old = WebPage(anonymous.http, session=before)
    assert (await old.get("/")).status_code == 303  # the pre-login id is gone
    page = await anonymous.get("/")
    assert page.status_code == 200
    assert ADMIN in page.text


async def test_a_wrong_password_says_only_that(anonymous: WebPage, site: Served) -> None:
    for name in (ADMIN, "nobody"):
        await anonymous.get("/login")
        response = await anonymous.post("/login", {"name": name, "password": "wrong password 1"})
        assert response.status_code == 401
        assert "Wrong name or password." in response.text
    assert (await anonymous.get("/")).status_code == 303


async def test_logout_ends_the_session(admin: WebPage) -> None:
    session = admin.session
    response = await admin.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert admin.session is None
    again = WebPage(admin.http, session=session)
    assert (await again.get("/")).status_code == 303


async def test_an_idle_session_ends(admin: WebPage, clock: FakeClock) -> None:
    clock.t += 1000  # within the default half hour
    assert (await admin.get("/")).status_code == 200
    clock.t += 1801
    assert (await admin.get("/")).status_code == 303


async def test_removing_an_account_ends_its_sessions(site: Served, viewer: WebPage) -> None:
    assert (await viewer.get("/")).status_code == 200
    await site.app.accounts.remove(VIEWER)
    assert (await viewer.get("/")).status_code == 303
    # Added again with the same name and password: still not the session's account.
    await site.app.accounts.add(VIEWER, Role.VIEWER, Secret("viewer password 0123"))
    assert (await viewer.get("/")).status_code == 303


async def test_an_account_removed_by_another_process_is_signed_out(
    site: Served, viewer: WebPage
) -> None:
    assert (await viewer.get("/")).status_code == 200
    async with open_app(site.app.home, {}) as other:  # `tokenpost admin remove viewer`
        await other.accounts.remove(VIEWER)
    assert (await viewer.get("/")).status_code == 303


async def test_a_new_password_ends_the_accounts_sessions(site: Served, admin: WebPage) -> None:
    assert (await admin.get("/")).status_code == 200
    await site.app.accounts.set_password(ADMIN, Secret("a brand new password 9"))
    assert (await admin.get("/")).status_code == 303
