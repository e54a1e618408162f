"""The status page and ``/api/v1/status`` keep what they derived from the status of every setting
(`row_html`, `rows.all_rows`, `StatusCache`): each visit still sees its own role and language,
the countdown of the minute, the next POP check as the daemon has it, and every change to the
store at once, made here or by another process.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from web_support import (
    ADMIN,
    ADMIN_PASSWORD,
    Served,
    WebPage,
    acquired,
    define_settings,
    give_token,
    served,
)

from fakes import FakeClock
from tokenpost.oauth.pending import DevicePending
from tokenpost.secret import Secret
from tokenpost.tokens.state import WaitingForAuthorization
from tokenpost.web.config import WebConfig
from tokenpost.web.templating import iso_time
from tokenpost.wiring import open_app


async def test_a_viewer_after_an_administrator_sees_no_buttons(
    site: Served, admin: WebPage, viewer: WebPage
) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    assert "/tokens/smtp/get" in (await admin.get("/")).text
    seen = (await viewer.get("/")).text
    assert ">Acquired<" in seen
    assert "/tokens/smtp/get" not in seen
    assert "/tokens/smtp/delete" not in seen
    assert "/check/smtp" not in seen
    assert "/tokens/smtp/get" in (await admin.get("/")).text


async def test_each_language_its_own_rows(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    english = (await admin.get("/", headers={"Accept-Language": "en"})).text
    german = (await admin.get("/", headers={"Accept-Language": "de"})).text
    assert ">Acquired<" in english
    assert "Connection test" in english
    assert ">Abgerufen<" in german
    assert "Verbindungstest" in german
    assert "Connection test" not in german


async def test_the_countdown_follows_the_clock(
    site: Served, admin: WebPage, clock: FakeClock
) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(clock.now() - 3510))  # 90 s left
    assert "2 min left" in (await admin.get("/")).text
    clock.t += 29
    assert "2 min left" in (await admin.get("/")).text
    clock.t += 2
    later = (await admin.get("/")).text
    assert "1 min left" in later
    assert "2 min left" not in later
    clock.t += 60
    assert "expired" in (await admin.get("/")).text


async def test_a_change_is_shown_at_the_next_request(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    assert ">Not acquired<" in (await admin.get("/")).text
    api_before = (await admin.get("/api/v1/status")).json()
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    assert ">Acquired<" in (await admin.get("/")).text
    api_after = (await admin.get("/api/v1/status")).json()
    assert [s["state"] for s in api_before["settings"] if s["id"] == "smtp"] == ["not_acquired"]
    assert [s["state"] for s in api_after["settings"] if s["id"] == "smtp"] == ["acquired"]


async def test_another_process_s_change_is_shown(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    assert "pop:scan" not in (await admin.get("/")).text
    async with open_app(site.app.home, {}) as other:  # as `tokenpost pop add` would
        fax = await other.store.get_pop("fax")
        assert fax is not None
        await other.settings.put_pop(dataclasses.replace(fax, name="scan"))
    assert "pop:scan" in (await admin.get("/")).text
    listed = (await admin.get("/api/v1/status")).json()["settings"]
    assert "pop:scan" in [s["id"] for s in listed]


async def test_the_api_shows_each_role_its_own_fields(
    site: Served, admin: WebPage, viewer: WebPage
) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    first = (await viewer.get("/api/v1/status")).json()
    again = (await admin.get("/api/v1/status", headers={"Accept-Language": "de"})).json()
    assert [s["label"] for s in first["settings"] if s["id"] == "smtp"] == ["Acquired"]
    assert [s["label"] for s in again["settings"] if s["id"] == "smtp"] == ["Abgerufen"]


async def test_the_pending_device_code_stays_with_administrators(
    site: Served, admin: WebPage, viewer: WebPage
) -> None:
    await define_settings(site.app)
    now = site.app.clock.now()
    flow = DevicePending(
        device_code=Secret("DC-smtp"), user_code="WDJB-MJHT",
        verification_uri="https://login.example/device", expires_at=now + 600, interval=5,
        next_poll_at=now,
    )  # fmt: skip
    await give_token(site.app, "smtp", WaitingForAuthorization(flow, started_at=now))
    shown = (await admin.get("/api/v1/status")).json()["settings"]
    hidden = (await viewer.get("/api/v1/status")).json()["settings"]
    assert [s["user_code"] for s in shown if s["id"] == "smtp"] == ["WDJB-MJHT"]
    assert [s["user_code"] for s in hidden if s["id"] == "smtp"] == [None]
    assert "WDJB-MJHT" not in (await viewer.get("/api/v1/status")).text


async def test_the_next_pop_check_moves_with_the_daemon(tmp_path: Path) -> None:
    clock = FakeClock()
    last_run = {"pop:fax": clock.now()}
    config = WebConfig(next_check=lambda pop: last_run[pop.setting_id] + pop.check_interval)
    async with served(tmp_path / "home", config, clock=clock) as site:
        await define_settings(site.app)
        page = site.client()
        try:
            await page.sign_in(ADMIN, ADMIN_PASSWORD)
            before = (await page.get("/")).text
            clock.t += 300
            last_run["pop:fax"] = clock.now()  # the daemon checked it
            after = (await page.get("/")).text
            api = (await page.get("/api/v1/status")).json()["settings"]
        finally:
            await page.aclose()
    assert f'<time datetime="{iso_time(clock.now())}">' in before
    assert f'<time datetime="{iso_time(clock.now() + 300)}">' in after
    assert [s["next_check"] for s in api if s["id"] == "pop:fax"] == [iso_time(clock.now() + 300)]
