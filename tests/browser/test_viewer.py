"""A viewer sees everything and changes nothing: in Chromium no page offers a button or form
that changes something, and each such route, requested directly with the viewer's own session
and CSRF token, is refused (403) and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from browser_support import Screenshots, log_in
from playwright.sync_api import expect

from demo_support import DemoRun

pytestmark = pytest.mark.slow

VIEWER_PASSWORD = "viewer-sees-all-42"

PAGES = (
    "/",
    "/settings/smtp",
    "/settings/pop",
    "/settings/pop/fax",
    "/providers",
    "/providers/sandbox",
    "/alerts",
    "/check/smtp",
    "/tokens/smtp/delete",
    "/mail",
)
CHANGES = (
    "/tokens/smtp/get",
    "/tokens/smtp/delete",
    "/tokens/smtp/cancel",
    "/tokens/smtp/finish",
    "/tokens/pop:fax/get",
    "/settings/smtp",
    "/settings/new-pop",
    "/settings/pop/fax",
    "/settings/pop/fax/remove",
    "/new-provider",
    "/providers/sandbox",
    "/providers/sandbox/remove",
    "/alerts",
    "/check/smtp",
    "/mail/send",
    "/mail/receive/fax",
)
ACTIONS = ("Get Token", "Delete", "Save", "Remove", "Run the connection test", "Send")


def test_a_viewer_sees_everything_and_changes_nothing(
    context: Any, page: Any, demo_run: DemoRun, shots: Screenshots
) -> None:
    added = demo_run.cli(
        "admin", "add", "viewer", "--viewer", "--password", "-", stdin=VIEWER_PASSWORD + "\n"
    )
    assert added.returncode == 0, added.stderr
    demo_run.acquire("smtp")
    log_in(page, "viewer", VIEWER_PASSWORD, shots)
    expect(page.locator(".account")).to_contain_text("viewer")
    expect(page.locator("tr[data-setting='smtp'] [data-live='label']")).to_have_text("Acquired")
    expect(page.locator("tr[data-setting='pop:fax'] [data-live='label']")).to_have_text(
        "Not acquired"
    )
    for path in PAGES:
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, path
        shots.take(page, path)
        main = page.locator("main")
        for name in ACTIONS:
            expect(main.get_by_role("button", name=name)).to_have_count(0)
            expect(main.get_by_role("link", name=name, exact=True)).to_have_count(0)
        # The only forms a viewer gets change its own session: language and logout.
        assert main.locator("form").count() == 0, path
    page.goto("/settings/smtp")
    shots.take(page, "smtp-again")
    expect(page.locator("main")).to_contain_text("scanner@example.test")

    csrf = page.locator("header input[name='csrf']").first.get_attribute("value")
    assert csrf
    page.goto("/mail")
    shots.take(page, "mail-again")
    expect(page.locator("main")).to_contain_text("Only an administrator sends and receives")
    for path in CHANGES:
        answer = context.request.post(path, form={"csrf": csrf, "name": "x", "to": "a@b.test"})
        assert answer.status == 403, (path, answer.status)
        assert "only an administrator" in answer.text()
    upload = context.request.post(
        "/mail/send",
        multipart={
            "csrf": csrf,
            "to": "fax@example.test",
            "attachment": {"name": "a.pdf", "mimeType": "application/pdf", "buffer": b"%PDF"},
        },
    )
    assert upload.status == 403
    assert demo_run.state("smtp") == "acquired"
    assert not list((demo_run.directory / "smtp" / "messages").glob("*.eml"))
    listed = demo_run.cli("pop", "list")
    assert "fax" in listed.stdout
    assert "office" in listed.stdout
