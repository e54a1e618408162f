"""Who may send which request. The routes are read from the application itself, so a route added
later is checked too: every change is refused without a session, without the CSRF token, from
another origin, and (but logging out and the language) as a viewer; every page but the login
needs a session; a viewer sees every page, and no form that changes anything."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import pytest
from fastapi.routing import APIRoute
from web_support import (
    ADMIN,
    ADMIN_PASSWORD,
    VIEWER,
    VIEWER_PASSWORD,
    Served,
    WebPage,
    acquired,
    define_settings,
    give_token,
)

from tokenpost.web.app import create_app
from tokenpost.web.config import WebConfig
from tokenpost.web.security import PUBLIC_PAGES, SIGNED_OUT_CHANGES, VIEWER_CHANGES

SAMPLES = {"setting_id": "smtp", "name": "fax"}  # `define_settings`'s
PROVIDER_SAMPLES = {"name": "m365"}


def api_routes(routes: Sequence[object]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (which FastAPI may keep as such)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def routes(site: Served) -> list[tuple[str, str]]:
    """(method, path with sample parameters) of every route of the page."""
    api = create_app(site.app, WebConfig())
    found = []
    for route in api_routes(api.routes):
        if route.path.startswith("/api/"):
            continue  # the JSON API answers 401 in its own shape: tests/web/test_api_guard.py
        samples = PROVIDER_SAMPLES if route.path.startswith("/providers") else SAMPLES
        path = route.path.format(**samples)
        found += [(method, path) for method in sorted(route.methods)]
    assert len(found) > 20  # the enumeration itself works
    return found


def changes(site: Served) -> list[str]:
    return [path for method, path in routes(site) if method not in {"GET", "HEAD"}]


def pages(site: Served) -> list[str]:
    return [path for method, path in routes(site) if method == "GET"]


async def test_every_page_but_the_login_needs_a_session(site: Served, anonymous: WebPage) -> None:
    for path in pages(site):
        response = await anonymous.get(path)
        if path in PUBLIC_PAGES:
            assert response.status_code == 200, path
        else:
            assert response.status_code == 303, path
            assert response.headers["location"] == "/login"


async def test_every_change_without_a_session_is_refused(site: Served, anonymous: WebPage) -> None:
    for path in changes(site):
        response = await anonymous.post(path, {"csrf": "guessed"})
        assert response.status_code == 403, path


async def test_every_change_without_the_csrf_token_is_refused(site: Served, admin: WebPage) -> None:
    for path in changes(site):
        assert (await admin.post(path, csrf=False)).status_code == 403, path
        assert (await admin.post(path, {"csrf": "not-the-token"})).status_code == 403, path
    assert (await admin.get("/")).status_code == 200  # still signed in


async def test_every_change_from_another_origin_is_refused(site: Served, admin: WebPage) -> None:
    for path in changes(site):
        for header in ("Origin", "Referer"):
            evil = {header: "https://evil.example"}
            assert (await admin.post(path, headers=evil)).status_code == 403, (path, header)


async def test_the_token_in_a_header_is_accepted(site: Served, admin: WebPage) -> None:
    response = await admin.post("/language", {"lang": "de"}, csrf=False, headers={
        "X-CSRF-Token": admin.csrf,
        "Origin": site.url.rstrip("/"),
    })  # fmt: skip
    assert response.status_code == 303


async def test_a_viewer_changes_nothing(site: Served, viewer: WebPage) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    before = await site.app.settings.export()
    for path in changes(site):
        if path in VIEWER_CHANGES or path in SIGNED_OUT_CHANGES:
            continue
        response = await viewer.post(path, {"server": "evil.example", "port": "25"})
        assert response.status_code == 403, path
        assert "only an administrator" in response.text
    assert await site.app.settings.export() == before
    assert (await site.app.store.load_token("smtp")).state.id.value == "acquired"


@pytest.mark.parametrize("who", ["viewer", "admin"])
async def test_a_viewer_sees_every_page_without_its_forms(site: Served, who: str) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    page = site.client()
    try:
        await _sees_every_page(site, page, who)
    finally:
        await page.aclose()


async def _sees_every_page(site: Served, page: WebPage, who: str) -> None:
    credentials = (VIEWER, VIEWER_PASSWORD) if who == "viewer" else (ADMIN, ADMIN_PASSWORD)
    assert (await page.sign_in(*credentials)).status_code == 303
    actions = set()
    for path in pages(site):
        if path in PUBLIC_PAGES:
            continue
        response = await page.get(path)
        assert response.status_code == 200, path
        actions |= set(re.findall(r'<form method="post" action="([^"]+)"', response.text))
        if who == "viewer":
            shown = re.sub(r'<input type="hidden" name="back"[^>]*>', "", response.text)
            for link in ('href="/tokens/', 'href="/check/', "/remove", "new-pop", "new-provider"):
                assert link not in shown, (path, link)
    if who == "viewer":
        assert actions == {"/logout", "/language"}
    else:
        assert {"/settings/smtp", "/alerts", "/tokens/smtp/delete", "/check/smtp"} <= actions
    status = await page.get("/")
    assert "scanner@example.test" in status.text
    assert "Acquired" in status.text
