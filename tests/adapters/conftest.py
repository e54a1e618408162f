"""Fixtures for the store's tests against real databases (see store_support)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pg_support import fresh_database
from store_support import Backend, fresh_backend
from tokenpost.adapters.home import Home, open_home
from tokenpost.adapters.sql_store import SqlStore, open_store


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database for this session, dropped afterwards; skip when there is no server."""
    with fresh_database("tokenpost_test") as name:
        yield name


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return open_home(tmp_path / "home", {})


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, home: Home) -> Backend:
    if request.param == "sqlite":
        return fresh_backend("sqlite", home)
    return fresh_backend("postgres", home, request.getfixturevalue("postgres_database"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SqlStore]:
    async with await open_store(backend.home, url=backend.url) as opened:
        yield opened
