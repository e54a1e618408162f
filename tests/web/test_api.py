"""The JSON API against the sandbox authorization server, over real HTTP: status, settings,
token get / poll / finish / cancel / delete, the connection test, in English and German, with the
API's error shape; and no secret of any kind in any answer."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from api_support import Api, error_code, served_api

from sandbox_support import DEFAULT_USER, Sandbox, ca_context
from tokenpost.tokens.state import Acquired, WaitingForAuthorization
from tokenpost.web.api.codes import ErrorCode
from tokenpost.web.headers import CSP

API = "/api/v1"
CLIENT_SECRET = "client-secret-9Xq2LmW7"
MAIL_PASSWORD = "mail-password-Vb83Kd1p"


@pytest.fixture
async def api(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[Api]:
    sandbox.control.config(device_interval=1)
    async with served_api(tmp_path / "home") as running:
        admin = running.admin()
        answer = await admin.put(f"{API}/settings/providers/sbx", json=provider(sandbox, "device"))
        assert answer.status_code == 200, answer.text
        answer = await admin.put(f"{API}/settings/smtp", json=SMTP)
        assert answer.status_code == 200, answer.text
        answer = await admin.put(f"{API}/settings/pop/fax", json=POP)
        assert answer.status_code == 200, answer.text
        yield running


def provider(sandbox: Sandbox, flow: str, **more: Any) -> dict[str, Any]:
    return {
        "preset": "generic", "client_id": sandbox.clients.public, "flow": flow,
        "issuer": sandbox.issuer, "scope": ["mail.send", "offline_access"],
        "ca_file": str(sandbox.ca_file), **more,
    }  # fmt: skip


SMTP = {
    "server": "smtp.example.test", "port": 587, "security": "starttls", "timeout": 30,
    "sender_name": "Scanner", "sender_address": "scanner@example.test", "auth": "oauth2",
    "provider": "sbx", "account": DEFAULT_USER,
}  # fmt: skip
POP = {
    "server": "pop.example.test", "port": 995, "security": "tls", "check_interval": 300,
    "auth": "password", "account": "fax@example.test", "password": MAIL_PASSWORD,
    "deliver_to": "/var/spool/fax",
}  # fmt: skip


def secrets_in(api: Api, *more: str) -> list[str]:
    """Which secret some answer showed: passwords, client secret, API tokens (but to no one who
    did not send it), tokens of the store."""
    found = []
    for response in api.answers:
        text = response.text
        for secret in (CLIENT_SECRET, MAIL_PASSWORD, *more):
            if secret and secret in text:
                found.append(f"{response.request.method} {response.request.url}: {secret[:6]}…")
    return found


async def tokens_of(api: Api, setting: str) -> tuple[str, ...]:
    state = (await api.app.store.load_token(setting)).state
    if isinstance(state, Acquired):
        refresh = state.refresh_token.reveal() if state.refresh_token else ""
        return (state.access_token.reveal(), refresh)
    return ()


async def until_state(client: httpx.AsyncClient, state: str, timeout: float = 15) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            answer = (await client.get(f"{API}/tokens/smtp/authorization")).json()
            if answer["state"] == state:
                return dict(answer)
            await asyncio.sleep(0.3)


async def test_status_like_token_status_in_english_and_german(api: Api) -> None:
    viewer = api.viewer()
    listed = (await viewer.get(f"{API}/status")).json()
    assert listed["format_version"] == 1
    smtp, fax = listed["settings"]
    assert (smtp["id"], smtp["state"], smtp["label"]) == ("smtp", "not_acquired", "Not acquired")
    assert (smtp["account"], smtp["provider"], smtp["in_force"]) == (DEFAULT_USER, "sbx", False)
    assert (fax["id"], fax["auth"], fax["state"], fax["in_force"]) == (
        "pop:fax",
        "password",
        None,
        None,
    )
    german = await viewer.get(f"{API}/status/smtp", headers={"Accept-Language": "de"})
    assert german.json()["label"] == "Nicht abgerufen"
    encoded = await viewer.get(f"{API}/status/pop%3Afax")  # the colon percent-encoded
    assert encoded.json()["id"] == "pop:fax"
    missing = await viewer.get(f"{API}/status/pop:nosuch", headers={"Accept-Language": "de"})
    assert (missing.status_code, error_code(missing)) == (404, "not_found")
    assert missing.json()["error"]["message"] == "keine POP-Einstellung 'nosuch'"
    bad = await viewer.get(f"{API}/status/imap")
    assert (bad.status_code, error_code(bad)) == (422, "validation_failed")
    assert bad.json()["error"]["problems"][0]["message"] == "a setting is 'smtp' or 'pop:NAME'"


async def test_get_token_by_the_device_grant_then_delete_it(api: Api, sandbox: Sandbox) -> None:
    admin, viewer = api.admin(), api.viewer()
    started = await admin.post(f"{API}/tokens/smtp/authorization")
    assert started.status_code == 200, started.text
    body = started.json()
    assert (body["state"], body["label"]) == (
        "waiting_for_authorization",
        "Waiting for authorization",
    )
    prompt = body["prompt"]
    assert prompt["kind"] == "device"
    assert prompt["verification_uri"].startswith("https://")
    assert 0 < prompt["expires_in"] <= 900
    state = (await api.app.store.load_token("smtp")).state
    assert isinstance(state, WaitingForAuthorization)
    assert prompt["user_code"] == state.flow.user_code  # type: ignore[union-attr]

    # A second request shows the pending one: no second device code.
    requests = sandbox.control.stats().requests.get("device", 0)
    again = (await admin.post(f"{API}/tokens/smtp/authorization")).json()
    assert again["prompt"]["user_code"] == prompt["user_code"]
    assert sandbox.control.stats().requests.get("device", 0) == requests
    # A viewer sees the state, never the code (they could approve with their own mailbox).
    seen = (await viewer.get(f"{API}/tokens/smtp/authorization")).json()
    assert (seen["state"], seen["prompt"], seen["status"]["user_code"]) == (
        "waiting_for_authorization", None, None,
    )  # fmt: skip
    status = (await admin.get(f"{API}/status/smtp")).json()
    assert status["user_code"] == prompt["user_code"]

    await asyncio.to_thread(sandbox.control.approve, prompt["user_code"], user=DEFAULT_USER)
    done = await until_state(admin, "acquired")
    assert done["prompt"] is None
    assert done["status"]["in_force"] is True
    assert done["status"]["expires_at"].endswith("Z")
    assert done["status"]["obtained_at"].endswith("Z")
    tokens = await tokens_of(api, "smtp")

    refused = await viewer.delete(f"{API}/tokens/smtp")
    assert (refused.status_code, error_code(refused)) == (403, "forbidden")
    deleted = await admin.delete(f"{API}/tokens/smtp", headers={"Accept-Language": "de"})
    assert deleted.status_code == 200, deleted.text
    gone = deleted.json()
    assert gone["status"]["state"] == "not_acquired"
    assert gone["status"]["label"] == "Nicht abgerufen"
    assert gone["revoked"] is True
    assert secrets_in(api, *tokens) == []


def sign_in_at_provider(sandbox: Sandbox, authorization_url: str) -> str:
    with httpx.Client(verify=ca_context(sandbox.ca_file), timeout=10) as client:
        answer = client.get(authorization_url)
    assert answer.status_code == 302, answer.text
    return str(answer.headers["location"])


async def test_browser_flow_finished_with_the_address(api: Api, sandbox: Sandbox) -> None:
    admin = api.admin()
    changed = await admin.put(f"{API}/settings/providers/sbx", json=provider(sandbox, "browser"))
    assert changed.status_code == 200, changed.text
    started = (await admin.post(f"{API}/tokens/smtp/authorization")).json()
    prompt = started["prompt"]
    assert (prompt["kind"], prompt["can_paste"]) == ("browser", True)
    address = sign_in_at_provider(sandbox, prompt["authorization_url"])
    code = parse_qs(urlsplit(address).query)["code"][0]

    wrong = address.replace("state=", "state=x")
    refused = await admin.post(f"{API}/tokens/smtp/authorization/address", json={"address": wrong})
    assert (refused.status_code, error_code(refused)) == (422, "address_refused")
    error = refused.json()["error"]
    assert (error["field"], error["reason"]) == ("address", "state")
    assert code not in refused.text
    assert isinstance((await api.app.store.load_token("smtp")).state, WaitingForAuthorization)

    finished = await admin.post(
        f"{API}/tokens/smtp/authorization/address", json={"address": address}
    )
    assert finished.status_code == 200, finished.text
    assert finished.json()["state"] == "acquired"
    replayed = await admin.post(
        f"{API}/tokens/smtp/authorization/address", json={"address": address}
    )
    assert (replayed.status_code, replayed.json()["error"]["reason"]) == (422, "no_pending")
    assert all(code not in r.text for r in api.answers)
    assert secrets_in(api, *await tokens_of(api, "smtp")) == []


async def test_cancel_keeps_the_working_token(api: Api, sandbox: Sandbox) -> None:
    admin = api.admin()
    prompt = (await admin.post(f"{API}/tokens/smtp/authorization")).json()["prompt"]
    await asyncio.to_thread(sandbox.control.approve, prompt["user_code"], user=DEFAULT_USER)
    await until_state(admin, "acquired")
    before = (await api.app.store.load_token("smtp")).state

    again = (await admin.post(f"{API}/tokens/smtp/authorization")).json()
    assert again["state"] == "waiting_for_authorization"
    assert (again["status"]["previous_state"], again["status"]["in_force"]) == ("acquired", True)
    cancelled = await admin.delete(f"{API}/tokens/smtp/authorization")
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["state"], cancelled.json()["prompt"]) == ("acquired", None)
    assert (await api.app.store.load_token("smtp")).state == before


async def test_a_setting_without_oauth_has_no_token_to_get(api: Api) -> None:
    answer = await api.admin().post(f"{API}/tokens/pop:fax/authorization")
    assert (answer.status_code, error_code(answer)) == (409, "conflict")


async def test_settings_read_and_write_like_the_cli(api: Api, sandbox: Sandbox) -> None:
    admin, viewer = api.admin(), api.viewer()
    secret = provider(sandbox, "device", client_secret=CLIENT_SECRET)
    saved = await admin.put(f"{API}/settings/providers/sbx", json=secret)
    assert saved.json()["provider"]["has_client_secret"] is True
    kept = await admin.put(f"{API}/settings/providers/sbx", json=provider(sandbox, "device"))
    assert kept.json()["provider"]["has_client_secret"] is True  # left out: kept
    stored = await api.app.store.get_provider("sbx")
    assert stored is not None
    assert stored.client_secret is not None
    assert stored.client_secret.reveal() == CLIENT_SECRET
    listed = (await viewer.get(f"{API}/settings/providers")).json()
    assert [p["name"] for p in listed["providers"]] == ["sbx"]
    assert listed["providers"][0]["effective_flow"] == "device"
    removed = await admin.put(
        f"{API}/settings/providers/sbx",
        json={**provider(sandbox, "device"), "remove_client_secret": True},
    )
    assert removed.json()["provider"]["has_client_secret"] is False

    in_use = await admin.delete(f"{API}/settings/providers/sbx")
    assert (in_use.status_code, error_code(in_use)) == (409, "conflict")

    pop = (await viewer.get(f"{API}/settings/pop/fax")).json()
    assert (pop["id"], pop["has_password"], pop["auth"]) == ("pop:fax", True, "password")
    assert [p["name"] for p in (await viewer.get(f"{API}/settings/pop")).json()["pop"]] == ["fax"]
    moved = await admin.put(f"{API}/settings/pop/fax", json={**POP, "password": None, "port": 9995})
    assert moved.json()["pop"]["has_password"] is True  # the same method: the password stays
    gone = await admin.delete(f"{API}/settings/pop/fax")
    assert gone.json()["removed"] == "pop:fax"
    assert (await viewer.get(f"{API}/settings/pop/fax")).status_code == 404

    smtp = (await viewer.get(f"{API}/settings/smtp")).json()
    assert (smtp["server"], smtp["has_password"]) == ("smtp.example.test", False)
    alerts = {"recipients": ["ops@example.test"], "hook": None, "refresh_failing_after": 600,
              "receive_failing_after": 1200}  # fmt: skip
    assert (await admin.put(f"{API}/settings/alerts", json=alerts)).json() == alerts
    assert (await viewer.get(f"{API}/settings/alerts")).json() == alerts
    assert secrets_in(api) == []


async def test_a_change_that_retargets_the_token_discards_and_revokes_it(
    api: Api, sandbox: Sandbox
) -> None:
    admin = api.admin()
    prompt = (await admin.post(f"{API}/tokens/smtp/authorization")).json()["prompt"]
    await asyncio.to_thread(sandbox.control.approve, prompt["user_code"], user=DEFAULT_USER)
    await until_state(admin, "acquired")
    changed = await admin.put(f"{API}/settings/smtp", json={**SMTP, "account": "bob@example.test"})
    assert changed.status_code == 200, changed.text
    [discarded] = changed.json()["discarded"]
    assert (discarded["setting"], discarded["revoked"]) == ("smtp", True)
    assert (await admin.get(f"{API}/status/smtp")).json()["state"] == "not_acquired"


async def test_rules_are_the_clis_with_every_field_in_german(api: Api) -> None:
    admin = api.admin(**{"Accept-Language": "de"})
    bad = {**SMTP, "port": 0, "sender_address": "not an address", "password": MAIL_PASSWORD}
    answer = await admin.put(f"{API}/settings/smtp", json=bad)
    assert (answer.status_code, error_code(answer)) == (422, "validation_failed")
    error = answer.json()["error"]
    assert error["field"] == "port"
    problems = {p["field"]: p["message"] for p in error["problems"]}
    assert problems["port"] == "muss eine ganze Zahl von 1 bis 65535 sein"
    assert "sender_address" in problems
    shape = await admin.put(f"{API}/settings/smtp", json={"port": "abc", "password": MAIL_PASSWORD})
    assert (shape.status_code, error_code(shape)) == (422, "validation_failed")
    fields = {p["field"] for p in shape.json()["error"]["problems"]}
    assert {"port", "server", "auth"} <= fields
    assert shape.json()["error"]["message"].startswith("die Anfrage passt nicht")
    broken = await admin.put(
        f"{API}/settings/alerts", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (broken.status_code, error_code(broken)) == (422, "validation_failed")
    assert secrets_in(api) == []
    assert (await api.app.store.get_smtp()).port == 587  # type: ignore[union-attr]


async def test_the_connection_test_shows_each_step(api: Api) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    admin = api.admin(**{"Accept-Language": "de"})
    answer = await admin.put(
        f"{API}/settings/smtp", json={**SMTP, "server": "127.0.0.1", "port": port}
    )
    assert answer.status_code == 200, answer.text
    report = await admin.post(f"{API}/checks/smtp")
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["ok"] is False
    assert [(s["step"], s["ok"]) for s in body["steps"]] == [
        ("settings", True), ("encryption", True), ("connect", False),
    ]  # fmt: skip
    assert body["steps"][0]["label"] == "Einstellungen vollständig"
    assert body["fix"]
    missing = (await admin.post(f"{API}/checks/pop:nosuch")).json()
    assert (missing["ok"], missing["steps"][0]["step"]) == (False, "settings")


async def test_answers_carry_the_pages_security_headers(api: Api) -> None:
    client = api.viewer()
    for path in (f"{API}/status", f"{API}/nosuch", "/openapi.json"):
        answer = await client.get(path)
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["content-type"].startswith("application/json")
    wrong = await api.admin().put(f"{API}/status")
    assert (wrong.status_code, wrong.headers["allow"], error_code(wrong)) == (
        405, "GET", "method_not_allowed",
    )  # fmt: skip


async def test_the_openapi_document_describes_the_api_only(api: Api) -> None:
    document = (await api.client().get("/openapi.json")).json()  # no credential needed
    assert document["info"]["title"] == "tokenpost"
    assert document["info"]["version"]
    assert document["paths"]
    assert all(p.startswith(f"{API}/") for p in document["paths"])
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 is replaced
    assert set(schemas["ErrorCode"]["enum"]) == {c.value for c in ErrorCode}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status in ("401", "403", "422"):
                ref = operation["responses"][status]["content"]["application/json"]["schema"]
                assert ref == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    assert set(document["components"]["securitySchemes"]) == {"apiToken", "session"}


async def test_each_change_is_one_log_line_naming_who(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tokenpost")
    admin = api.admin()
    await admin.put(f"{API}/settings/alerts", json={"recipients": ["ops@example.test"]})
    await admin.post(f"{API}/checks/pop:x%0Aapi: forged line")
    await api.viewer().get(f"{API}/status")  # reading is not logged
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("api: ")]
    assert lines[0] == "api: ci-bot PUT '/api/v1/settings/alerts': 200"
    assert lines[1].startswith("api: ci-bot POST '/api/v1/checks/pop:x")
    assert lines[1].endswith("forged line': 422")
    assert len(lines) == 2
    assert not any("\n" in line for line in lines)  # a path is quoted: it never forges a line
    assert api.admin_token not in caplog.text


async def test_status_has_every_key_and_value_of_token_status_json(
    api: Api, sandbox: Sandbox
) -> None:
    from tokenpost.cli.token_cmds import status_json
    from tokenpost.services.status import status

    admin = api.admin()
    prompt = (await admin.post(f"{API}/tokens/smtp/authorization")).json()["prompt"]
    await asyncio.to_thread(sandbox.control.approve, prompt["user_code"], user=DEFAULT_USER)
    await until_state(admin, "acquired")
    await admin.post(f"{API}/tokens/smtp/authorization")  # pending again, the previous in force
    shown = (await admin.get(f"{API}/status", headers={"Accept-Language": "de"})).json()
    app = api.app
    rows = await status(app.store, now=app.clock.now(), owners=app.authorizer.owners)
    cli = [status_json(row, "de") for row in rows]
    assert len(cli) == len(shown["settings"]) == 2
    for expected, got in zip(cli, shown["settings"], strict=True):
        assert {key: got[key] for key in expected} == expected
    assert shown["settings"][0]["previous_label"] == "Abgerufen"
