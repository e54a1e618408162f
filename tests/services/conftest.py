from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_world import World, provider, smtp_setting

from pg_support import fresh_database
from store_support import Backend, fresh_backend
from tokenpost.adapters.home import open_home


@pytest.fixture
async def world() -> World:
    w = World()
    await w.store.put_provider(provider())
    await w.store.put_smtp(smtp_setting())
    return w


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with fresh_database("tokenpost_services") as name:
        yield name


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A real store's backend: the home's SQLite file, or PostgreSQL with an empty schema."""
    home = open_home(tmp_path / "home", {})
    if request.param == "sqlite":
        return fresh_backend("sqlite", home)
    return fresh_backend("postgres", home, request.getfixturevalue("pg_database"))
