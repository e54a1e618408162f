"""The page in German shows the four token labels exactly as the README's table names them; and
the main flow (log in, Get Token approved on the sandbox's page, Acquired, Delete with its
confirmation, Not acquired) works by keyboard alone: Tab, Enter, Space and typing, no click."""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_support import LIVE_TIMEOUT_MS, REPO, Screenshots, log_in, tab_to
from playwright.sync_api import expect

from demo_support import DemoRun

pytestmark = pytest.mark.slow


def readme_labels() -> dict[str, tuple[str, str]]:
    """state id → (English, German), from the README's table (the one headed "state id")."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("| state id | English | Deutsch |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| ([^|]+) \|$", table, re.MULTILINE)
    return {state: (english.strip(), german.strip()) for state, english, german in rows}


def test_the_four_labels_in_german_as_in_the_readme(
    browser: Any, demo_run: DemoRun, shots: Screenshots
) -> None:
    labels = readme_labels()
    assert set(labels) == {"not_acquired", "waiting_for_authorization", "acquired", "invalid"}
    german = browser.new_context(
        base_url=demo_run.url, locale="de-DE", extra_http_headers={"Accept-Language": "de-DE"}
    )
    try:
        page = german.new_page()
        log_in(page, demo_run.admin, demo_run.admin_password, shots)
        expect(page.get_by_role("link", name="POP-Einstellungen")).to_be_visible()

        def label(setting: str) -> Any:
            return page.locator(f"tr[data-setting='{setting}'] [data-live='label']")

        expect(label("pop:office")).to_have_text(labels["not_acquired"][1])
        with demo_run.control() as control:
            control.config(device_interval=1)
            page.goto("/tokens/pop:fax/get")
            shots.take(page, "get")
            page.locator("main form[action$='/get']").get_by_role("button").click()
            shots.take(page, "prompt")
            code = page.locator("output.user-code").inner_text().strip()
            page.goto("/")
            expect(label("pop:fax")).to_have_text(labels["waiting_for_authorization"][1])
            shots.take(page, "waiting")
            control.approve(code, user=demo_run.demo_user)
            expect(label("pop:fax")).to_have_text(labels["acquired"][1], timeout=LIVE_TIMEOUT_MS)
            shots.take(page, "acquired")
            # The provider refuses the next refresh: the grant is gone, the token Invalid.
            control.fault("token", "invalid_grant")
        refreshed = demo_run.cli("token", "refresh", "pop:fax")
        assert refreshed.returncode == 1, refreshed.stderr
        expect(label("pop:fax")).to_have_text(labels["invalid"][1], timeout=LIVE_TIMEOUT_MS)
        shots.take(page, "invalid")
        page.reload()
        texts = page.locator("[data-live='label']").all_inner_texts()
        assert set(texts) <= {german for _, german in labels.values()}
    finally:
        german.close()


def test_the_main_flow_by_keyboard_alone(
    context: Any, page: Any, demo_run: DemoRun, shots: Screenshots
) -> None:
    with demo_run.control() as control:
        control.config(device_interval=1)
    if demo_run.state("smtp") != "not_acquired":
        demo_run.cli("token", "delete", "smtp", "--yes")
    keys = page.keyboard
    page.goto("/")
    expect(page.locator("#name")).to_be_focused()  # the login's name field has the focus
    keys.type(demo_run.admin)
    keys.press("Tab")
    keys.type(demo_run.admin_password)
    keys.press("Enter")
    page.wait_for_url(lambda url: not url.endswith("/login"))
    shots.take(page, "status")

    tab_to(page, "tr[data-setting='smtp'] a[href='/tokens/smtp/get']")
    keys.press("Enter")
    page.wait_for_url("**/tokens/smtp/get")
    shots.take(page, "get")
    tab_to(page, "main form[action='/tokens/smtp/get'] button")
    keys.press("Space")
    expect(page.locator("output.user-code")).to_be_visible()
    shots.take(page, "prompt")
    label = page.locator("tr[data-setting='smtp'] [data-live='label']")
    expect(label).to_have_text("Waiting for authorization")

    # The verification link opens the sandbox's page in a second tab, the code filled in.
    tab_to(page, "section.token-flow a[target='_blank']")
    with context.expect_page() as opened:
        keys.press("Enter")
    sandbox = opened.value
    sandbox.wait_for_load_state()
    expect(sandbox.locator("#username")).to_be_focused()
    sandbox.keyboard.type(demo_run.demo_user)
    sandbox.keyboard.press("Tab")
    sandbox.keyboard.type(demo_run.demo_password)
    sandbox.keyboard.press("Enter")  # the first button: Approve
    sandbox.locator(".done").wait_for()
    shots.take(sandbox, "approved")
    sandbox.close()

    page.bring_to_front()
    expect(label).to_have_text("Acquired", timeout=LIVE_TIMEOUT_MS)
    shots.take(page, "acquired")
    tab_to(page, "a[href='/']:not(.brand)")
    keys.press("Enter")
    page.wait_for_url(re.compile(r"/$"))
    shots.take(page, "status-again")
    tab_to(page, "tr[data-setting='smtp'] a[href='/tokens/smtp/delete']")
    keys.press("Enter")
    page.wait_for_url("**/tokens/smtp/delete")
    shots.take(page, "delete-confirmation")
    tab_to(page, "main form[action='/tokens/smtp/delete'] button")
    with page.expect_navigation():
        keys.press("Enter")
    shots.take(page, "after-delete")
    page.goto("/")
    expect(page.locator("tr[data-setting='smtp'] [data-live='label']")).to_have_text("Not acquired")
    shots.take(page, "not-acquired")
    assert demo_run.state("smtp") == "not_acquired"
