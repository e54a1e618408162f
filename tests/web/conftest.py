from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from web_support import (
    ADMIN,
    ADMIN_PASSWORD,
    VIEWER,
    VIEWER_PASSWORD,
    Served,
    WebPage,
    served,
)

from fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def site(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Served]:
    async with served(tmp_path / "home", clock=clock) as running:
        yield running


@pytest.fixture
async def anonymous(site: Served) -> AsyncIterator[WebPage]:
    page = site.client()
    try:
        yield page
    finally:
        await page.aclose()


@pytest.fixture
async def admin(site: Served) -> AsyncIterator[WebPage]:
    page = site.client()
    response = await page.sign_in(ADMIN, ADMIN_PASSWORD)
    assert response.status_code == 303, response.text
    try:
        yield page
    finally:
        await page.aclose()


@pytest.fixture
async def viewer(site: Served) -> AsyncIterator[WebPage]:
    page = site.client()
    response = await page.sign_in(VIEWER, VIEWER_PASSWORD)
    assert response.status_code == 303, response.text
    try:
        yield page
    finally:
        await page.aclose()
