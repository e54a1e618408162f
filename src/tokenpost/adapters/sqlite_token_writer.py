"""The token compare-and-set of a SQLite file, in one hop to a thread of its own.

A refresh writes its token once. Through SQLAlchemy's async driver that write is a pooled
connection, BEGIN IMMEDIATE, the statement and COMMIT, each a hop to the driver's thread (about
2 ms of CPU on a 2-core machine, more than the HTTPS exchange with the provider). Here the whole
transaction is one job on one thread that owns a standard-library connection: the event loop
hands it over once and waits, never blocked by the write lock or the commit's fsync.

The statements are those of `sql_store` (DESIGN invariant 1): UPDATE … WHERE version =
expected; for a first write (expected 0) an INSERT that overwrites only a row whose version is
not an integer (changed outside tokenpost) and otherwise changes nothing, which is the
conflict. The connection is set up as `sql_engine` sets up SQLAlchemy's (busy timeout, foreign
keys; the file is already in WAL mode), and SQLite's durability setting is left at its default,
as there.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tokenpost.adapters.store_schema import BUSY_TIMEOUT_S, sqlite_errors

_KEY = "setting_id"


class SqliteTokenWriter:
    """Writes `tokens` rows of the SQLite file `path` on one thread. Close it when done."""

    def __init__(self, path: Path, *, where: str) -> None:
        self._where = where
        with sqlite_errors(where):
            self._conn = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,  # transactions are begun below, IMMEDIATE
                check_same_thread=False,  # used only on the writer's thread
            )
            self._conn.execute("PRAGMA foreign_keys = ON")
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="tokenpost-token-writer")

    async def write(self, row: dict[str, Any], *, expected_version: int) -> bool:
        """Write the sealed `row` if the stored version is `expected_version` (0: none, or one
        that is not an integer); False when another writer changed it first.

        Raises:
            StoreError: the database cannot be written.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._write, row, expected_version)

    async def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._conn.close()

    def _write(self, row: dict[str, Any], expected: int) -> bool:
        statement, parameters = _insert(row) if expected == 0 else _update(row, expected)
        with sqlite_errors(self._where):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                changed = self._conn.execute(statement, parameters).rowcount == 1
                self._conn.execute("COMMIT" if changed else "ROLLBACK")
            finally:
                # A failed statement or COMMIT (a full disk, say) leaves nothing half done, and
                # the next write begins afresh; the failure itself is what the caller sees.
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
        return changed


def _update(row: dict[str, Any], expected: int) -> tuple[str, dict[str, Any]]:
    columns = ", ".join(f"{_name(c)} = :{c}" for c in row)
    statement = f"UPDATE tokens SET {columns} WHERE {_KEY} = :{_KEY} AND version = :expected"  # noqa: S608 - names are the row's own columns, checked
    return statement, {**row, "expected": expected}


def _insert(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    names = ", ".join(_name(c) for c in row)
    values = ", ".join(f":{c}" for c in row)
    updates = ", ".join(f"{_name(c)} = excluded.{c}" for c in row if c != _KEY)
    statement = (
        f"INSERT INTO tokens ({names}) VALUES ({values})"  # noqa: S608 - as above
        f" ON CONFLICT ({_KEY}) DO UPDATE SET {updates}"
        " WHERE typeof(tokens.version) != 'integer'"
    )
    return statement, row


def _name(column: str) -> str:
    if not column.isidentifier():  # the store's own column names; never input
        raise ValueError(f"not a column name: {column!r}")
    return column
