"""A newcomer's path through `tokenpost demo` in Chromium: log in, configure SMTP, Get Token by
the device grant approved on the sandbox's own verification page, Acquired without reloading,
Delete with its confirmation, a message with an attachment sent from the page arriving at a POP
setting; and no secret in any page, API answer or log line of the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser_support import (
    LIVE_TIMEOUT_MS,
    Screenshots,
    approve_on_sandbox,
    get_token,
    log_in,
    secrets_found,
    start_device_grant,
)
from playwright.sync_api import expect

from demo_support import DemoRun

pytestmark = pytest.mark.slow


def test_log_in_and_configure_smtp(page: Any, demo_run: DemoRun, shots: Screenshots) -> None:
    log_in(page, demo_run.admin, demo_run.admin_password, shots)
    expect(page.locator("tr[data-setting='smtp'] [data-live='label']")).to_have_text("Not acquired")
    page.get_by_role("link", name="SMTP setting").click()
    shots.take(page, "smtp")
    page.fill("#f-sender_name", "Scanner 3rd floor")
    page.fill("#f-timeout", "45")
    page.locator("main form").get_by_role("button", name="Save").click()
    expect(page.locator(".notice")).to_be_visible()
    shots.take(page, "smtp-saved")
    assert page.input_value("#f-sender_name") == "Scanner 3rd floor"
    shown = demo_run.cli("smtp", "show")
    assert "Scanner 3rd floor" in shown.stdout, shown
    # A value the rules refuse is shown beside its field, and nothing is saved.
    page.fill("#f-timeout", "9999")
    page.locator("main form").get_by_role("button", name="Save").click()
    expect(page.locator("#e-timeout")).to_be_visible()
    shots.take(page, "smtp-refused")
    assert "45" in demo_run.cli("smtp", "show").stdout


def test_get_token_turns_acquired_without_reloading(
    context: Any, page: Any, demo_run: DemoRun, shots: Screenshots
) -> None:
    with demo_run.control() as control:
        control.config(device_interval=1)
    log_in(page, demo_run.admin, demo_run.admin_password, shots)
    code, link = start_device_grant(page, "smtp", shots)
    label = page.locator("tr[data-setting='smtp'] [data-live='label']")
    expect(label).to_have_text("Waiting for authorization")
    page.evaluate("window.stillTheSamePage = true")
    approve_on_sandbox(context, link, code, demo_run, shots)
    expect(label).to_have_text("Acquired", timeout=LIVE_TIMEOUT_MS)
    assert page.evaluate("window.stillTheSamePage === true"), "the page was reloaded"
    shots.take(page, "acquired")
    assert demo_run.state("smtp") == "acquired"


def test_delete_with_confirmation_turns_not_acquired(
    page: Any, demo_run: DemoRun, shots: Screenshots
) -> None:
    if demo_run.state("smtp") != "acquired":
        demo_run.acquire("smtp")
    log_in(page, demo_run.admin, demo_run.admin_password, shots)
    page.locator("tr[data-setting='smtp']").get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Delete the token of smtp?")
    shots.take(page, "delete-confirmation")
    assert demo_run.state("smtp") == "acquired"  # asking deleted nothing
    with page.expect_navigation():
        page.get_by_role("button", name="Delete the token of smtp").click()
    shots.take(page, "after-delete")
    page.goto("/")
    expect(page.locator("tr[data-setting='smtp'] [data-live='label']")).to_have_text("Not acquired")
    expect(
        page.locator("tr[data-setting='smtp']").get_by_role("link", name="Delete")
    ).to_have_count(0)
    shots.take(page, "deleted")
    assert demo_run.state("smtp") == "not_acquired"


def test_a_message_sent_from_the_page_arrives_at_a_pop_setting(
    context: Any, page: Any, demo_run: DemoRun, shots: Screenshots, tmp_path: Path
) -> None:
    with demo_run.control() as control:
        control.config(device_interval=1)
    log_in(page, demo_run.admin, demo_run.admin_password, shots)
    for setting in ("smtp", "pop:fax"):
        if demo_run.state(setting) != "acquired":
            get_token(page, context, setting, demo_run, shots)
    scan = tmp_path / "scan 0001.pdf"
    scan.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 64 + b"\n%%EOF\n")
    page.get_by_role("link", name="Mail").click()
    shots.take(page, "mail")
    page.fill("#f-to", "fax@example.test")
    page.fill("#f-subject", "Scan from the <b>third</b> floor")
    page.fill("#f-body", "The scan is attached.")
    page.set_input_files("#f-attachment", str(scan))
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator(".notice")).to_contain_text("Message sent: <")
    shots.take(page, "sent")

    listing = page.locator("table[data-received='fax']")
    for _ in range(20):
        page.get_by_role("button", name="Receive now: pop:fax").click()
        if listing.count() and "Scan from the" in listing.inner_text():
            break
        page.wait_for_timeout(500)
    # The subject is shown as it was sent: its markup as text, never as markup.
    expect(listing).to_contain_text("Scan from the <b>third</b> floor")
    expect(listing.locator("b")).to_have_count(0)
    expect(listing).to_contain_text("scan 0001.pdf")
    expect(page.locator("table[data-received='office']")).to_have_count(0)
    shots.take(page, "received")
    delivered = demo_run.directory / "delivered" / "fax"
    stored = list((delivered / "new").iterdir())
    assert len(stored) == 1
    attachment = next((delivered / "attachments").rglob("scan 0001.pdf"))
    assert attachment.read_bytes() == scan.read_bytes()


def test_an_attachment_over_the_limit_is_refused(
    page: Any, demo_run: DemoRun, shots: Screenshots, tmp_path: Path
) -> None:
    log_in(page, demo_run.admin, demo_run.admin_password, shots)
    large = tmp_path / "large.bin"
    large.write_bytes(b"\0" * (12 * 1024 * 1024))
    page.goto("/mail")
    page.fill("#f-to", "fax@example.test")
    page.set_input_files("#f-attachment", str(large))
    with page.expect_response(lambda r: r.url.endswith("/mail/send")) as answer:
        page.get_by_role("button", name="Send", exact=True).click()
    assert answer.value.status == 413
    expect(page.locator("body")).to_contain_text("larger than 10 MiB")
    shots.take(page, "too-large")


def test_no_secret_in_any_page_api_answer_or_log_line(
    context: Any,
    page: Any,
    demo_run: DemoRun,
    shots: Screenshots,
    seen_pages: list[tuple[str, str]],
) -> None:
    if demo_run.state("smtp") != "acquired":
        demo_run.acquire("smtp")
    ready = demo_run.ready
    secrets = {
        "administrator password": demo_run.admin_password,
        "demo user's password": demo_run.demo_password,
        "access token": "sbx_at_",
        "refresh token": "sbx_rt_",
        "sandbox control key": ready.control_key_file.read_text().strip(),
        "app client secret": ready.clients.app.secret,
        "mail server client secret": ready.clients.mailserver.secret,
    }
    log_in(page, demo_run.admin, demo_run.admin_password, shots)
    for path in (
        "/",
        "/settings/smtp",
        "/settings/pop",
        "/settings/pop/fax",
        "/providers",
        "/providers/sandbox",
        "/alerts",
        "/mail",
        "/check/smtp",
        "/tokens/smtp/get",
        "/tokens/smtp/delete",
    ):
        page.goto(path)
        shots.take(page, path)
    page.goto("/check/smtp")
    page.get_by_role("button", name="Run the connection test").click()
    shots.take(page, "check-run")
    # tokenpost's pages only: the sandbox's verification page shows its demo password itself.
    ours = [html for url, html in seen_pages if url.startswith(demo_run.url)]
    assert len(ours) > 20
    answers = [context.request.get("/live/status").text()]
    for html in [*ours, *answers]:
        assert not secrets_found(html, secrets)
    # serve's log, and the output of every command the tests ran on the demo's home.
    log = "".join(demo_run.stderr)
    assert "web page at" in log
    assert not secrets_found(log, secrets)
    # The demo prints the two passwords a newcomer needs, on standard output, once each.
    printout = "".join(demo_run.stdout)
    assert printout.count(demo_run.admin_password) == 1
    assert printout.count(demo_run.demo_password) == 1
    assert not secrets_found(printout, {k: v for k, v in secrets.items() if "password" not in k})
