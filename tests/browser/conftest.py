"""Fixtures of the browser tests: one Chromium and one `tokenpost demo` per test module, a fresh
browser context (no cookies) per test, and its screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import CHROMIUM, DemoRun, Screenshots, chromium_args


# Per module, not per session: while Playwright's sync API is open it keeps an event loop running
# in this thread, and the asyncio tests that pytest runs after the browser tests need none.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-peers (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=chromium_args()
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def demo_run() -> Iterator[DemoRun]:
    run = DemoRun.start()
    try:
        yield run
    finally:
        run.stop()


@pytest.fixture(scope="module")
def seen_pages() -> list[tuple[str, str]]:
    """(address, HTML) of every page a test of the module took a screenshot of."""
    return []


@pytest.fixture
def shots(request: pytest.FixtureRequest, seen_pages: list[tuple[str, str]]) -> Screenshots:
    return Screenshots(request.node.name, seen_pages)


@pytest.fixture
def context(browser: Any, demo_run: DemoRun) -> Iterator[Any]:
    # The sandbox's verification page uses the demo's throw-away CA, which Chromium does not know.
    made = browser.new_context(base_url=demo_run.url, locale="en-US", ignore_https_errors=True)
    made.set_default_timeout(20_000)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()
