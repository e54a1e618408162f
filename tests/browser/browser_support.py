"""The browser tests' support: Debian's Chromium driven by Playwright (sync API), a screenshot
of every page visited, and the steps several tests take (log in, approve on the sandbox's page).

Chromium is /usr/bin/chromium (scripts/ensure-peers installs it); Playwright's own browser
download is never used. Screenshots go to test-artifacts/screenshots/ (gitignored).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from demo_support import DemoRun

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
LIVE_TIMEOUT_MS = 30_000  # the device grant's interval, serve's poll, live.js's poll (5 s)


def chromium_args() -> list[str]:
    # Chromium refuses to run as root with its sandbox on.
    return ["--no-sandbox"] if os.geteuid() == 0 else []


class Screenshots:
    """Saves a screenshot of each page visited, named after the test and the step, and keeps
    (address, HTML) of each page in `pages` (for the secret scan)."""

    def __init__(self, test_name: str, pages: list[tuple[str, str]]) -> None:
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        self.count = 0
        self.pages = pages
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(self, page: Any, step: str) -> None:
        self.count += 1
        name = f"{self.prefix}-{self.count:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', step)}.png"
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
        self.pages.append((page.url, page.content()))


def log_in(page: Any, name: str, password: str, shots: Screenshots) -> None:
    page.goto("/")
    assert page.url.endswith("/login"), page.url
    shots.take(page, "login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.locator("main").get_by_role("button").click()
    page.wait_for_url(lambda url: not url.endswith("/login"))
    shots.take(page, "status")


def start_device_grant(page: Any, setting: str, shots: Screenshots) -> tuple[str, str]:
    """[Get Token] on the status page, then on its confirmation: (user code, link)."""
    page.goto("/")
    row = page.locator(f"tr[data-setting='{setting}']")
    row.get_by_role("link", name="Get Token").click()
    shots.take(page, f"get-{setting}")
    page.locator("main form[action$='/get']").get_by_role("button").click()
    code = page.locator("output.user-code").inner_text().strip()
    link = page.locator("section.token-flow a[target='_blank']").get_attribute("href")
    assert code
    assert link
    shots.take(page, f"prompt-{setting}")
    return code, link


def approve_on_sandbox(
    context: Any, link: str, code: str, run: DemoRun, shots: Screenshots
) -> None:
    """A second tab: the sandbox's verification page, signed in as its demo user; Approve."""
    tab = context.new_page()
    tab.goto(link)
    if not tab.input_value("#user_code"):
        tab.fill("#user_code", code)
    tab.fill("#username", run.demo_user)
    tab.fill("#password", run.demo_password)
    shots.take(tab, "sandbox-activate")
    tab.get_by_role("button", name="Approve").click()
    tab.locator(".done").wait_for()
    shots.take(tab, "sandbox-approved")
    tab.close()


def get_token(page: Any, context: Any, setting: str, run: DemoRun, shots: Screenshots) -> None:
    """The whole device grant on the web page, approved on the sandbox's page."""
    code, link = start_device_grant(page, setting, shots)
    approve_on_sandbox(context, link, code, run, shots)
    from playwright.sync_api import expect

    label = page.locator(f"tr[data-setting='{setting}'] [data-live='label']")
    expect(label).to_have_text("Acquired", timeout=LIVE_TIMEOUT_MS)


_FOCUSED = "s => document.activeElement !== null && document.activeElement.matches(s)"


def tab_to(page: Any, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches `selector`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(
            "s => document.activeElement && document.activeElement.matches(s)", selector
        ):
            return
    raise AssertionError(f"Tab never reached {selector} on {page.url}")


def secrets_found(text: str, secrets: dict[str, str]) -> list[str]:
    """The names of the secrets that occur in `text`."""
    return [name for name, value in secrets.items() if value and value in text]
