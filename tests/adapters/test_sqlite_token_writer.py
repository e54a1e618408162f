"""The SQLite token writer on a real store file: a failed write leaves nothing half done and the
next one works; a write waiting for another connection's lock leaves the event loop free."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tokenpost.adapters.home import Home, open_home
from tokenpost.adapters.sql_store import SqlStore, open_store
from tokenpost.adapters.sqlite_token_writer import SqliteTokenWriter
from tokenpost.errors import StoreError


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    home = open_home(tmp_path / "home", {}, writing=True)
    async with await open_store(home) as store:
        yield store


@pytest.fixture
async def writer(store: SqlStore, tmp_path: Path) -> AsyncIterator[SqliteTokenWriter]:
    path = _home(tmp_path).db_path
    writer = SqliteTokenWriter(path, where=str(path))
    yield writer
    await writer.close()


def _home(tmp_path: Path) -> Home:
    return open_home(tmp_path / "home", {}, writing=False)


def _row(setting_id: str, version: int, **changes: object) -> dict[str, object]:
    return {
        "setting_id": setting_id,
        "state": "acquired",
        "public": "{}",
        "secrets": None,
        "binding": "b",
        "version": version,
        "updated_at": 1.0,
        "mac": b"m",
        **changes,
    }


def _rows(tmp_path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(_home(tmp_path).db_path) as conn:
        rows = conn.execute("SELECT setting_id, version, state FROM tokens").fetchall()
    conn.close()
    return rows


async def test_a_failed_write_leaves_nothing_and_the_next_one_works(
    writer: SqliteTokenWriter, tmp_path: Path
) -> None:
    with pytest.raises(StoreError):
        await writer.write(_row("smtp", 1, state=None), expected_version=0)  # NOT NULL
    assert _rows(tmp_path) == []
    assert await writer.write(_row("smtp", 1), expected_version=0)
    assert await writer.write(_row("smtp", 2), expected_version=1)
    assert not await writer.write(_row("smtp", 2), expected_version=1)  # stale: a conflict
    assert not await writer.write(_row("smtp", 1), expected_version=0)  # exists: a conflict
    assert _rows(tmp_path) == [("smtp", 2, "acquired")]


async def test_a_write_waiting_for_the_lock_leaves_the_loop_free(
    writer: SqliteTokenWriter, tmp_path: Path
) -> None:
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        conn = sqlite3.connect(_home(tmp_path).db_path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(5)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    locked.wait(5)
    write = asyncio.ensure_future(writer.write(_row("smtp", 1), expected_version=0))
    ticks = 0
    started = time.monotonic()
    while time.monotonic() - started < 0.3:
        await asyncio.sleep(0.01)
        ticks += 1
    assert not write.done()
    assert ticks >= 10  # the loop ran while the write waited
    release.set()
    assert await write
    holder.join()
    assert _rows(tmp_path) == [("smtp", 1, "acquired")]
