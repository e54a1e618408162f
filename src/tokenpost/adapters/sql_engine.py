"""Engines for the store: which URLs are supported, and how SQLite connections are set up.

- SQLite runs in WAL mode with a 10 s busy timeout and foreign keys on; SQLAlchemy emits BEGIN
  itself (pysqlite's legacy implicit BEGIN skips DDL and SELECT), and write transactions (those
  run with the `WRITE_OPTION` execution option) begin IMMEDIATE so a read never has to upgrade to
  a write lock mid-transaction.
- A new SQLite file is created 0600 before SQLite opens it; SQLite gives its -wal and -shm files
  the same mode.
- Driver errors become StoreError (`store_schema.driver_error`); messages name the store without
  a password.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tokenpost.adapters.store_schema import BUSY_TIMEOUT_S, driver_error
from tokenpost.errors import StoreError, UsageError

WRITE_OPTION: Final = "tokenpost_write"
_DRIVERS: Final = frozenset({"sqlite+aiosqlite", "postgresql+psycopg"})


def sqlite_url(path: Path) -> sa.URL:
    return sa.URL.create("sqlite+aiosqlite", database=str(path))


def parse_url(url: str) -> sa.URL:
    """Raises UsageError for anything but the two supported async drivers."""
    try:
        target = sa.make_url(url)
    except sa.exc.ArgumentError:
        target = None
    if target is None or target.drivername not in _DRIVERS:
        raise UsageError(
            "store URL: must start with sqlite+aiosqlite:/// or postgresql+psycopg://"
        ) from None
    return target


def make_engine(target: sa.URL, *, wal: bool, pool: type[sa.Pool] | None = None) -> AsyncEngine:
    options: dict[str, Any] = {} if pool is None else {"poolclass": pool}
    if target.get_backend_name() != "sqlite":
        try:
            return create_async_engine(target, **options)
        except ModuleNotFoundError:
            raise StoreError("PostgreSQL needs psycopg: install tokenpost[postgres]") from None
    engine = create_async_engine(target, connect_args={"timeout": BUSY_TIMEOUT_S}, **options)
    _install_sqlite_hooks(engine, wal=wal)
    return engine


def _install_sqlite_hooks(engine: AsyncEngine, *, wal: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not pysqlite, emits BEGIN (see the module docstring).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if wal:
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def sqlite_file(target: sa.URL) -> Path | None:
    if target.get_backend_name() != "sqlite" or not target.database:
        return None
    if target.database == ":memory:" or target.database.startswith("file:"):
        return None
    return Path(target.database)


def create_private_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (it would use the umask); SQLite gives
    the -wal and -shm files the mode of the database file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        os.close(os.open(path, flags, 0o600))
    except FileExistsError:
        return  # created concurrently by another process opening the same new store
    except OSError as exc:
        raise StoreError(
            "cannot create the database file {path}: {reason}",
            path=str(path),
            reason=exc.strerror or str(exc),
        ) from exc


def describe(target: sa.URL) -> str:
    """The store's name for messages; never shows a password."""
    path = sqlite_file(target)
    return str(path) if path is not None else target.render_as_string(hide_password=True)


@contextlib.contextmanager
def mapped_errors(where: str) -> Iterator[None]:
    """Translate driver errors into StoreError; the driver's first line is safe to show (the
    store never sends a secret to the database in plaintext)."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise driver_error(where, str(exc.orig), type(exc.orig).__name__) from exc
