"""The revision of a SQLite store (`ports.Store.revision`), read with the standard library.

Through the async driver one read costs about a millisecond (a pooled connection, BEGIN, the
SELECT and a rollback, each a hop to the driver's thread); the web page takes the revision at
every request. Here one read-only connection of its own, in autocommit, reads the one row on the
caller's thread in microseconds. In WAL mode (every tokenpost store) a reader never waits for a
writer, so the event loop is not held up by another process's write.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tokenpost.adapters.store_schema import BUSY_TIMEOUT_S, REVISION_QUERY, sqlite_errors


class SqliteRevision:
    """Reads the counter of 0006 from `path`; the connection opens at the first read."""

    def __init__(self, path: Path, *, where: str) -> None:
        self._path = path
        self._where = where
        self._conn: sqlite3.Connection | None = None

    def read(self) -> int:
        with sqlite_errors(self._where):
            if self._conn is None:
                self._conn = sqlite3.connect(
                    self._path.absolute().as_uri() + "?mode=ro",
                    uri=True,
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,  # autocommit: each read sees the latest commit
                    check_same_thread=False,
                )
            row = self._conn.execute(REVISION_QUERY).fetchone()
        return int(row[0])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
