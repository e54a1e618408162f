"""The settings pages save through the settings service, as the CLI does, and show what it
refuses beside each field with the CLI's own rule text."""

from __future__ import annotations

import html
import re

from web_support import (
    CLIENT_SECRET,
    MAIL_PASSWORD,
    Served,
    WebPage,
    acquired,
    define_settings,
    give_token,
)

from tokenpost.i18n import translator
from tokenpost.settings.model import AuthMethod, Security
from tokenpost.settings.validate import ADDRESS_RULE, PORT_RULE, SERVER_RULE
from tokenpost.tokens.state_id import StateId

SMTP_FORM = {
    "server": "smtp.example.test",
    "port": "587",
    "security": "starttls",
    "timeout": "30",
    "sender_name": "Scanner",
    "sender_address": "scanner@example.test",
    "auth": "oauth2",
    "provider": "m365",
    "account": "scanner@example.test",
    "password": "",
    "ca_file": "",
}


def beside(page: str, field: str) -> str:
    """The problem shown beside a field, or ''."""
    found = re.search(rf'<p class="field-error" id="e-{field}">([^<]*)</p>', page)
    return html.unescape(found.group(1)) if found else ""


async def test_smtp_saved_as_the_cli_would(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    response = await admin.post("/settings/smtp", {**SMTP_FORM, "server": "mail.example.test"})
    assert response.status_code == 303
    page = await admin.get(response.headers["location"])
    assert "SMTP setting saved." in page.text
    smtp = await site.app.store.get_smtp()
    assert smtp is not None
    assert (smtp.server, smtp.auth, smtp.provider) == (
        "mail.example.test",
        AuthMethod.OAUTH2,
        "m365",
    )


async def test_rule_texts_beside_their_fields(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    before = await site.app.store.get_smtp()
    form = {**SMTP_FORM, "port": "many", "server": "bad host!", "sender_address": "nobody"}
    response = await admin.post("/settings/smtp", form)
    assert response.status_code == 400
    assert beside(response.text, "port") == PORT_RULE
    assert beside(response.text, "server") == SERVER_RULE
    assert beside(response.text, "sender_address") == ADDRESS_RULE
    assert beside(response.text, "timeout") == ""
    assert 'value="bad host!"' in response.text  # what was typed stays in the form
    assert await site.app.store.get_smtp() == before  # nothing saved


async def test_rule_texts_in_german(site: Served, admin: WebPage) -> None:
    await admin.post("/language", {"lang": "de"})
    await admin.get("/settings/smtp")
    response = await admin.post("/settings/smtp", {**SMTP_FORM, "port": "0", "provider": "x"})
    german = translator("de").gettext
    assert beside(response.text, "port") == german(PORT_RULE)
    assert beside(response.text, "provider") == german("unknown provider {name!r}").format(name="x")


async def test_a_change_that_retargets_the_token_discards_it(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    await give_token(site.app, "smtp", acquired(site.app.clock.now()))
    response = await admin.post("/settings/smtp", {**SMTP_FORM, "account": "other@example.test"})
    page = await admin.get(response.headers["location"])
    assert "The token of smtp was discarded" in page.text
    assert (await site.app.store.load_token("smtp")).state.id is StateId.NOT_ACQUIRED


async def test_pop_add_edit_remove(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    form = {
        "name": "print",
        "server": "pop.example.test",
        "port": "995",
        "security": "tls",
        "check_interval": "600",
        "auth": "oauth2",
        "provider": "m365",
        "account": "print@example.test",
        "deliver_to": "/var/spool/print",
        "leave_on_server": "on",
    }
    await admin.get("/settings/new-pop")
    created = await admin.post("/settings/new-pop", form)
    assert created.status_code == 303
    assert created.headers["location"] == "/settings/pop/print"
    pop = await site.app.store.get_pop("print")
    assert pop is not None
    assert pop.leave_on_server
    assert pop.check_interval == 600
    again = await admin.post("/settings/new-pop", form)
    assert again.status_code == 400
    assert "exists" in beside(again.text, "name")
    relative = await admin.post("/settings/pop/print", {**form, "deliver_to": "spool"})
    assert relative.status_code == 400
    assert beside(relative.text, "deliver_to").startswith("must be an absolute")
    edited = await admin.post("/settings/pop/print", {**form, "check_interval": "120"})
    assert edited.status_code == 303
    assert (await site.app.store.get_pop("print")).check_interval == 120  # type: ignore[union-attr]
    listing = await admin.get("/settings/pop")
    assert "pop:print" in listing.text
    assert "pop:fax" in listing.text
    await admin.get("/settings/pop/print/remove")
    removed = await admin.post("/settings/pop/print/remove")
    assert removed.status_code == 303
    assert await site.app.store.get_pop("print") is None


async def test_a_mail_password_is_write_only(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    page = await admin.get("/settings/pop/fax")
    assert MAIL_PASSWORD not in page.text
    assert "Stored. Leave empty to keep it." in page.text
    form = {
        "server": "pop2.example.test", "port": "995", "security": "tls",
        "check_interval": "300", "auth": "password", "account": "fax@example.test",
        "password": "", "deliver_to": "/var/spool/fax",
    }  # fmt: skip
    assert (await admin.post("/settings/pop/fax", form)).status_code == 303
    pop = await site.app.store.get_pop("fax")
    assert pop is not None
    assert pop.server == "pop2.example.test"
    assert pop.password is not None
    assert pop.password.reveal() == MAIL_PASSWORD
    assert pop.security is Security.TLS


async def test_providers_add_edit_remove_with_a_write_only_secret(
    site: Served, admin: WebPage
) -> None:
    form = {"name": "g", "preset": "google", "client_id": "client.apps.example", "flow": ""}
    created = await admin.post("/new-provider", {**form, "client_secret": CLIENT_SECRET})
    assert created.status_code == 303
    page = await admin.get("/providers/g")
    assert CLIENT_SECRET not in page.text
    assert (await admin.post("/providers/g", {**form, "client_secret": ""})).status_code == 303
    stored = await site.app.store.get_provider("g")
    assert stored is not None
    assert stored.client_secret is not None
    assert stored.client_secret.reveal() == CLIENT_SECRET
    wrong = await admin.post("/providers/g", {**form, "flow": "device"})
    assert wrong.status_code == 400
    assert beside(wrong.text, "flow") == (
        "Google's device flow refuses the Gmail scope; use --flow browser"
    )
    cleared = {**form, "remove_client_secret": "on"}
    assert (await admin.post("/providers/g", cleared)).status_code == 303
    stored = await site.app.store.get_provider("g")
    assert stored is not None
    assert stored.client_secret is None
    assert (await admin.post("/providers/g/remove")).status_code == 303
    assert await site.app.store.get_provider("g") is None


async def test_a_provider_in_use_is_not_removed(site: Served, admin: WebPage) -> None:
    await define_settings(site.app)
    response = await admin.post("/providers/m365/remove")
    page = await admin.get(response.headers["location"])
    assert await site.app.store.get_provider("m365") is not None
    assert "m365" in page.text
    assert 'class="notice"' in page.text


async def test_alerts(site: Served, admin: WebPage) -> None:
    form = {
        "recipients": "ops@example.test\nboss@example.test",
        "hook": "",
        "refresh_failing_after": "600",
        "receive_failing_after": "7200",
    }
    assert (await admin.post("/alerts", form)).status_code == 303
    alerts = await site.app.store.get_alerts()
    assert alerts.recipients == ("ops@example.test", "boss@example.test")
    assert alerts.refresh_failing_after == 600
    bad = await admin.post("/alerts", {**form, "refresh_failing_after": "5"})
    assert bad.status_code == 400
    assert beside(bad.text, "refresh_failing_after").startswith("must be an integer from 60")
