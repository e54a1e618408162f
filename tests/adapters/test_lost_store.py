"""A SQLite store that is missing or empty beside its key file is a lost store, not a new one
(issue 8, item 12); a PostgreSQL database with no schema beside a key file is a second
instance's store, and is opened with that key."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from store_support import POSTGRES_ONLY, Backend
from tokenpost.adapters.crypto import load_key
from tokenpost.adapters.home import Home, open_home
from tokenpost.adapters.sql_store import open_store
from tokenpost.adapters.sqlite_reader import open_sqlite_reader
from tokenpost.errors import StoreError
from tokenpost.i18n import translator
from tokenpost.settings.model import Preset, Provider

PROVIDER = Provider("p", Preset.GOOGLE, "client")


async def _written(home: Home) -> bytes:
    """A store with one provider; returns its key file's content."""
    async with await open_store(home) as store:
        await store.put_provider(PROVIDER)
    return home.key_path.read_bytes()


def _remove_store(home: Home) -> None:
    for path in home.path.glob("tokenpost.db*"):
        path.unlink()


async def test_a_missing_store_beside_its_key_is_refused(home: Home) -> None:
    key = await _written(home)
    _remove_store(home)
    with pytest.raises(StoreError) as caught:
        await open_store(home)
    message = str(caught.value)
    assert f"the store {home.db_path} does not exist, but the key file {home.key_path}" in message
    assert f"Restore {home.db_path} from a backup" in message
    assert f"move the key file {home.key_path} away to start a new, empty store" in message
    assert not home.db_path.exists()  # nothing was created
    assert home.key_path.read_bytes() == key
    assert open_sqlite_reader(home) is None  # `token status` then opens the full store: refused


@pytest.mark.parametrize("kind", ["zero bytes", "no tables"])
async def test_an_empty_store_beside_its_key_is_refused(home: Home, kind: str) -> None:
    key = await _written(home)
    _remove_store(home)
    home.db_path.touch(mode=0o600)
    if kind == "no tables":
        with sqlite3.connect(home.db_path) as conn:
            conn.execute("PRAGMA user_version = 7")  # a valid database file with no table
        conn.close()
    with pytest.raises(StoreError) as caught:
        await open_store(home)
    message = str(caught.value)
    assert f"the store {home.db_path} is empty, but the key file {home.key_path} exists" in message
    assert "from a backup" in message
    assert "away to start a new, empty store" in message
    # Decided under the write lock: SQLite may have written its WAL header, nothing more.
    with sqlite3.connect(home.db_path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
        assert conn.execute("PRAGMA user_version").fetchone() == (7 if kind == "no tables" else 0,)
    conn.close()
    assert home.key_path.read_bytes() == key
    assert open_sqlite_reader(home) is None


async def test_the_key_file_moved_away_starts_a_new_store(home: Home) -> None:
    old_key = await _written(home)
    _remove_store(home)
    home.key_path.rename(home.path / "key.old")
    async with await open_store(home) as store:
        assert await store.list_providers() == []
    assert home.key_path.read_bytes() != old_key


async def test_a_key_file_from_the_environment_counts_too(tmp_path: Path) -> None:
    home = open_home(tmp_path / "home", {"TOKENPOST_KEY_FILE": str(tmp_path / "secret-key")})
    await _written(home)
    _remove_store(home)
    with pytest.raises(StoreError, match="secret-key"):
        await open_store(home)


async def test_a_failed_first_start_leaves_no_key(home: Home) -> None:
    # The migration fails after the key was created (a table in the way stands for a full disk):
    # nothing was written with that key, so it goes, and the next start is a new store again.
    with sqlite3.connect(home.db_path) as conn:
        conn.execute("CREATE TABLE providers (x)")
    conn.close()
    with pytest.raises(StoreError, match="already exists"):
        await open_store(home)
    assert not home.key_path.exists()
    with sqlite3.connect(home.db_path) as conn:
        conn.execute("DROP TABLE providers")
    conn.close()
    async with await open_store(home) as store:
        await store.put_provider(PROVIDER)
    assert home.key_path.exists()


async def test_new_stores_opened_at_once_are_not_taken_for_lost_ones(home: Home) -> None:
    # The second open finds the key the first one just created beside a store still empty;
    # deciding under the write lock, it waits and finds the first one's schema instead.
    stores = await asyncio.gather(*(open_store(home) for _ in range(4)))
    try:
        await stores[0].put_provider(PROVIDER)
        assert await stores[3].list_providers() == [PROVIDER]
    finally:
        for store in stores:
            await store.close()


@POSTGRES_ONLY
async def test_a_new_postgres_database_beside_a_key_is_a_second_instance(
    backend: Backend,
) -> None:
    load_key(backend.home.key_path, create=True)  # the key the first instance shares
    key = backend.home.key_path.read_bytes()
    async with await open_store(backend.home, url=backend.url) as store:
        await store.put_provider(PROVIDER)
    assert backend.home.key_path.read_bytes() == key
    async with await open_store(backend.home, url=backend.url) as again:
        assert await again.list_providers() == [PROVIDER]


async def test_the_refusal_in_german(home: Home) -> None:
    await _written(home)
    _remove_store(home)
    with pytest.raises(StoreError) as caught:
        await open_store(home)
    german = caught.value.translate(translator("de").gettext)
    assert str(home.db_path) in german
    assert str(home.key_path) in german
    assert "Sicherung" in german
