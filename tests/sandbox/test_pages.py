"""The sandbox's pages for a person: the device flow's verification page and the browser flow's
sign-in page, driven as a browser without JavaScript drives them (GET the page, POST its form).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from sandbox_support import DEFAULT_USER, Sandbox, ca_context

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# RFC 7636 Appendix B.
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.fixture
def http(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.issuer, verify=ca_context(sandbox.ca_file)) as client:
        yield client


def start_device(sandbox: Sandbox, http: httpx.Client) -> dict[str, Any]:
    sandbox.control.config(device_interval=0)
    response = http.post("/device", data={"client_id": sandbox.clients.public, "scope": "mail"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def poll(sandbox: Sandbox, http: httpx.Client, device_code: str) -> httpx.Response:
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code}
    return http.post("/token", data={**form, "client_id": sandbox.clients.public})


def submit(
    sandbox: Sandbox,
    http: httpx.Client,
    user_code: str,
    *,
    decision: str = "approve",
    user: str = DEFAULT_USER,
    password: str | None = None,
) -> httpx.Response:
    form = {
        "user_code": user_code,
        "username": user,
        "password": sandbox.demo_password if password is None else password,
        "decision": decision,
    }
    return http.post("/activate", data=form)


def form_action(page: str) -> str:
    found = re.search(r'<form method="post" action="([^"]*)"', page)
    assert found is not None, page
    return html.unescape(found.group(1))


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def assert_safe_page(response: httpx.Response) -> None:
    """Server-rendered HTML that runs no script and cannot be framed."""
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "script-src" not in csp
    assert "unsafe-inline" not in csp
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in response.text.lower()
    parser = _Tags()
    parser.feed(response.text)
    assert "script" not in parser.tags
    assert not [a for a in parser.attributes if a.startswith("on")], "an inline event handler"
    assert "style" not in parser.attributes


# --- the verification page (RFC 8628 §3.3) -----------------------------------------------------


def test_the_page_shows_a_form_and_the_demo_account(sandbox: Sandbox, http: httpx.Client) -> None:
    started = start_device(sandbox, http)

    page = http.get("/activate")

    assert page.status_code == 200
    assert_safe_page(page)
    assert f"<code>{DEFAULT_USER}</code>" in page.text
    assert f"<code>{sandbox.demo_password}</code>" in page.text
    assert form_action(page.text) == "/activate"
    for field in ("user_code", "username", "password"):
        assert f'name="{field}"' in page.text
    assert 'value="approve"' in page.text
    assert 'value="deny"' in page.text
    # The verification_uri_complete fills in the code.
    complete = http.get(started["verification_uri_complete"].removeprefix(sandbox.issuer))
    assert f'value="{started["user_code"]}"' in complete.text


def test_the_stylesheet_comes_from_the_same_origin(sandbox: Sandbox, http: httpx.Client) -> None:
    page = http.get("/activate")
    sheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', page.text)

    assert sheet is not None
    response = http.get(sheet.group(1))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


def test_approving_on_the_page_grants_the_device(sandbox: Sandbox, http: httpx.Client) -> None:
    started = start_device(sandbox, http)
    assert poll(sandbox, http, started["device_code"]).json()["error"] == "authorization_pending"
    typed = started["user_code"].replace("-", "").lower()  # as a person may type it

    page = submit(sandbox, http, typed, user=DEFAULT_USER.upper())

    assert page.status_code == 200, page.text
    assert_safe_page(page)
    assert "You approved the code " + started["user_code"] in page.text
    granted = poll(sandbox, http, started["device_code"])
    assert granted.status_code == 200, granted.text
    mailserver = sandbox.clients.mailserver
    info = http.post(
        "/introspect",
        data={"token": granted.json()["access_token"]},
        auth=(mailserver.client_id, mailserver.secret),
    ).json()
    assert info["sub"] == DEFAULT_USER


def test_the_demo_user_follows_the_browser_user_knob(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(browser_user="scanner@example.test")
    started = start_device(sandbox, http)

    assert "<code>scanner@example.test</code>" in http.get("/activate").text
    refused = submit(sandbox, http, started["user_code"])  # alice is not the account now
    accepted = submit(sandbox, http, started["user_code"], user="scanner@example.test")

    assert refused.status_code == 401
    assert accepted.status_code == 200


def test_denying_on_the_page_ends_the_flow(sandbox: Sandbox, http: httpx.Client) -> None:
    started = start_device(sandbox, http)

    page = submit(sandbox, http, started["user_code"], decision="deny")

    assert page.status_code == 200
    assert "You denied the code" in page.text
    assert poll(sandbox, http, started["device_code"]).json()["error"] == "access_denied"


@pytest.mark.parametrize(
    ("user", "password"),
    [(DEFAULT_USER, "wrong-password"), ("mallory@example.test", None), (DEFAULT_USER, "")],
)
def test_a_wrong_sign_in_decides_nothing(
    sandbox: Sandbox, http: httpx.Client, user: str, password: str | None
) -> None:
    started = start_device(sandbox, http)

    page = submit(sandbox, http, started["user_code"], user=user, password=password)

    assert page.status_code == 401
    assert_safe_page(page)
    assert "The user name or password is wrong" in page.text
    assert f'value="{started["user_code"]}"' in page.text  # kept for the next try
    if password:
        assert password not in page.text  # a typed password is never sent back
    assert poll(sandbox, http, started["device_code"]).json()["error"] == "authorization_pending"


def test_a_decision_must_be_approve_or_deny(sandbox: Sandbox, http: httpx.Client) -> None:
    started = start_device(sandbox, http)

    page = submit(sandbox, http, started["user_code"], decision="maybe")

    assert page.status_code == 400
    assert "Choose Approve or Deny" in page.text
    assert poll(sandbox, http, started["device_code"]).json()["error"] == "authorization_pending"


def test_an_unknown_code_is_named_with_the_fix(sandbox: Sandbox, http: httpx.Client) -> None:
    page = submit(sandbox, http, "WXYZ-WXYZ")

    assert page.status_code == 404
    assert "No device is waiting with the code WXYZ-WXYZ" in page.text
    assert "Check the code on the device" in page.text


def test_an_expired_code_says_to_start_again(sandbox: Sandbox, http: httpx.Client) -> None:
    started = start_device(sandbox, http)
    sandbox.control.expire(started["user_code"])

    page = submit(sandbox, http, started["user_code"])

    assert page.status_code == 400
    assert "has expired" in page.text
    assert poll(sandbox, http, started["device_code"]).json()["error"] == "expired_token"


def test_a_code_is_decided_once(sandbox: Sandbox, http: httpx.Client) -> None:
    started = start_device(sandbox, http)
    assert submit(sandbox, http, started["user_code"], decision="deny").status_code == 200

    again = submit(sandbox, http, started["user_code"])

    assert again.status_code == 409
    assert "already approved or denied" in again.text
    assert poll(sandbox, http, started["device_code"]).json()["error"] == "access_denied"


def test_what_a_person_typed_is_escaped(sandbox: Sandbox, http: httpx.Client) -> None:
    page = submit(sandbox, http, '"><img src=x>', user='<b onclick="x">me</b>', password="x")

    assert page.status_code == 401
    assert "<img" not in page.text
    assert "<b " not in page.text
    assert "&lt;b onclick=&quot;x&quot;&gt;me&lt;/b&gt;" in page.text
    assert_safe_page(page)


# --- the browser flow's sign-in page (knob browser_decision=interactive) -----------------------


def authorize(sandbox: Sandbox, http: httpx.Client, redirect_uri: str) -> httpx.Response:
    query = {
        "response_type": "code",
        "client_id": sandbox.clients.public,
        "redirect_uri": redirect_uri,
        "scope": "mail.send offline_access",
        "state": "s-7",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    return http.get("/authorize?" + urlencode(query))


def sign_in(
    sandbox: Sandbox, http: httpx.Client, page: httpx.Response, **fields: str
) -> httpx.Response:
    form = {"username": DEFAULT_USER, "password": sandbox.demo_password, "decision": "approve"}
    return http.post(form_action(page.text), data={**form, **fields})


def redirected(response: httpx.Response, redirect_uri: str) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_interactive_browser_shows_a_sign_in_page(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(browser_decision="interactive")

    page = authorize(sandbox, http, "http://127.0.0.1:5005/callback")

    assert page.status_code == 200
    assert_safe_page(page)
    assert "form-action" not in page.headers["content-security-policy"]  # it ends in a redirect
    assert f"<code>{sandbox.clients.public}</code>" in page.text
    assert "<code>mail.send offline_access</code>" in page.text
    assert f"<code>{sandbox.demo_password}</code>" in page.text
    assert form_action(page.text).startswith("/authorize?")
    assert sandbox.control.stats().grants_by_type["authorization_code"] == 0


def test_interactive_approval_redirects_with_a_code(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(browser_decision="interactive")
    redirect_uri = "http://127.0.0.1:5006/callback"

    params = redirected(
        sign_in(sandbox, http, authorize(sandbox, http, redirect_uri)), redirect_uri
    )

    assert (params["state"], params["iss"]) == ("s-7", sandbox.issuer)
    tokens = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "client_id": sandbox.clients.public,
            "code_verifier": VERIFIER,
        },
    )
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["access_token"].startswith("sbx_at_")


def test_interactive_denial_redirects_access_denied(sandbox: Sandbox, http: httpx.Client) -> None:
    sandbox.control.config(browser_decision="interactive")
    redirect_uri = "http://127.0.0.1:5007/callback"
    page = authorize(sandbox, http, redirect_uri)

    params = redirected(sign_in(sandbox, http, page, decision="deny"), redirect_uri)

    assert params["error"] == "access_denied"
    assert "code" not in params


def test_interactive_wrong_password_shows_the_page_again(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    sandbox.control.config(browser_decision="interactive")
    page = authorize(sandbox, http, "http://127.0.0.1:5008/callback")

    again = sign_in(sandbox, http, page, password="guess")

    assert again.status_code == 401
    assert "location" not in again.headers
    assert "The user name or password is wrong" in again.text
    assert form_action(again.text) == form_action(page.text)


def test_interactive_page_still_refuses_a_bad_redirect_uri(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    sandbox.control.config(browser_decision="interactive")

    page = authorize(sandbox, http, "http://evil.example/callback")

    assert page.status_code == 400
    assert page.json()["error"] == "invalid_request"
