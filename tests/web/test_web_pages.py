"""What the pages show: the manual's labels in English and German, [Delete] with its
confirmation, the connection test's steps, the live status, and HTTPS."""

from __future__ import annotations

import socket
from pathlib import Path

import trustme
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

from tokenpost.tokens.state_id import StateId
from tokenpost.web.config import WebConfig
from tokenpost.web.templating import iso_time


async def test_status_shows_every_setting(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    now = site.app.clock.now()
    await give_token(site.app, "smtp", acquired(now))
    page = (await admin.get("/")).text
    assert '<span class="label state-acquired" data-live="label">Acquired</span>' in page
    assert "scanner@example.test" in page
    assert "m365" in page
    assert "60 min left" in page  # expires in an hour
    assert "pop:fax" in page
    assert "no token (auth password)" in page


async def test_german_labels_by_accept_language(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    page = (await admin.get("/", headers={"Accept-Language": "fr, de-AT;q=0.9, en;q=0.5"})).text
    assert '<html lang="de">' in page
    assert ">Nicht abgerufen<" in page
    assert "Abmelden" in page
    english = (await admin.get("/", headers={"Accept-Language": "en-GB"})).text
    assert ">Not acquired<" in english


async def test_the_language_switch_is_kept_in_the_session(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    switched = await admin.post("/language", {"lang": "de", "back": "/settings/smtp"})
    assert switched.headers["location"] == "/settings/smtp"
    page = (await admin.get("/", headers={"Accept-Language": "en"})).text
    assert ">Abgerufen<" in page
    assert "Verbindungstest" in page
    away = await admin.post("/language", {"lang": "en", "back": "//evil.example/"})
    assert away.headers["location"] == "/"  # never elsewhere


async def test_the_login_page_in_german_before_signing_in(anonymous: WebPage) -> None:
    page = (await anonymous.get("/login", headers={"Accept-Language": "de"})).text
    assert "Anmelden" in page
    assert "Passwort" in page


async def test_delete_asks_then_reads_not_acquired(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    confirm = await admin.get("/tokens/smtp/delete")
    assert "Delete the token of smtp?" in confirm.text
    assert (await site.app.store.load_token("smtp")).state.id is StateId.ACQUIRED  # asked only
    deleted = await admin.post("/tokens/smtp/delete")
    assert deleted.status_code == 303
    page = (await admin.get("/")).text
    assert "The token of smtp was deleted (the provider has no revocation endpoint)." in page
    assert '<span class="label state-not_acquired" data-live="label">Not acquired</span>' in page
    assert (await site.app.store.load_token("smtp")).state.id is StateId.NOT_ACQUIRED


async def test_the_connection_test_shows_its_steps(site: Served, admin: WebPage) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    form = {
        "server": "127.0.0.1", "port": str(port), "security": "tls", "timeout": "5",
        "sender_name": "Scanner", "sender_address": "scanner@example.test", "auth": "none",
    }  # fmt: skip
    await admin.get("/settings/smtp")
    assert (await admin.post("/settings/smtp", form)).status_code == 303
    page = await admin.get("/check/smtp")
    assert "Run the connection test" in page.text
    report = (await admin.post("/check/smtp")).text
    for label in ("Settings complete", "Encryption policy", "Connect"):
        assert f'<th scope="row">{label}</th>' in report
    assert '<tr class="failed" data-step="connect">' in report
    assert "Connection test failed at: Connect" in report
    assert "What to do:" in report


async def test_live_status(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    data = (await admin.get("/live/status", headers={"Accept-Language": "de"})).json()
    smtp = next(s for s in data["settings"] if s["id"] == "smtp")
    assert smtp["state"] == "acquired"
    assert smtp["label"] == "Abgerufen"
    assert smtp["expires_at"].endswith("Z")


async def test_https_with_a_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    tls = (str(cert_file), str(key_file), str(ca_file))
    async with served(tmp_path / "home", WebConfig(), tls=tls) as site:
        assert site.url.startswith("https://127.0.0.1:")
        page = site.client()
        try:
            assert (await page.sign_in(ADMIN, ADMIN_PASSWORD)).status_code == 303
            response = await page.get("/")
            assert response.status_code == 200
            assert "max-age=" in response.headers["strict-transport-security"]
        finally:
            await page.aclose()


async def test_the_next_pop_check_from_the_running_daemon(tmp_path: Path) -> None:
    from fakes import FakeClock

    clock = FakeClock()
    config = WebConfig(next_check=lambda pop: clock.now() + pop.check_interval)
    async with served(tmp_path / "home", config, clock=clock) as site:
        await define_settings(site.app)
        page = site.client()
        try:
            await page.sign_in(ADMIN, ADMIN_PASSWORD)
            text = (await page.get("/")).text
        finally:
            await page.aclose()
    when = iso_time(clock.now() + 300)
    assert f'<td><time datetime="{when}">' in text  # pop:fax checks every 300 s
