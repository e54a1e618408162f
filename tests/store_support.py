"""The store's test backends: a SQLite file in a temporary home, and PostgreSQL at 127.0.0.1:5432
(user postgres, trust auth) in a database made for the test session; raw SQL on them, to
inspect or damage what the store wrote (the fixtures are in tests/adapters/conftest.py and
tests/services/conftest.py, both through `fresh_backend`); and a store wrapper counting the
calls made to it."""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from pg_support import PG_HOST, PG_PORT, store_url
from tokenpost.adapters.crypto import load_key
from tokenpost.adapters.home import Home
from tokenpost.adapters.store_mac import MAC_COLUMN, row_mac

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@dataclass(frozen=True)
class Backend:
    name: str
    home: Home
    url: str | None  # None: the home's SQLite file
    pg_database: str | None = None

    def execute(self, statement: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Run raw SQL outside the store (to inspect or damage it), in its own transaction."""
        if self.pg_database is None:
            with sqlite3.connect(self.home.db_path) as conn:
                rows = conn.execute(statement, params).fetchall()
            conn.close()
            return rows
        import psycopg

        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", dbname=self.pg_database
        ) as conn:
            cursor = conn.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []

    def row(self, table: str, key: str, value: object) -> dict[str, Any]:
        """One row as column-name mapping, read outside the store."""
        names = [r[0] for r in self.columns(table)]
        query = f"SELECT {', '.join(names)} FROM {table} WHERE {key} = ?"  # noqa: S608 - tests
        (values,) = self.execute(query, (value,))
        return dict(zip(names, values, strict=True))

    def columns(self, table: str) -> list[tuple[str]]:
        if self.pg_database is None:
            return [(r[1],) for r in self.execute(f"PRAGMA table_info({table})")]
        return self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " ORDER BY ordinal_position",
            (table,),
        )


def fresh_backend(kind: str, home: Home, database: str | None = None) -> Backend:
    """`kind` "sqlite": the home's SQLite file; "postgres": `database`, its schema emptied."""
    if kind == "sqlite":
        return Backend("sqlite", home, None)
    assert database is not None
    reset = Backend("postgres", home, None, database)
    reset.execute("DROP SCHEMA public CASCADE")
    reset.execute("CREATE SCHEMA public")
    return Backend("postgres", home, store_url(database), database)


def reseal(backend: Backend, table: str, key: str, value: object) -> None:
    """Write the row's MAC again with the store's key: the row is authentic again whatever it
    holds (what a faulty or newer tokenpost might have written)."""
    row = backend.row(table, key, value)
    mac = row_mac(load_key(backend.home.key_path, create=False), table, row)
    backend.execute(f"UPDATE {table} SET {MAC_COLUMN} = ? WHERE {key} = ?", (mac, value))  # noqa: S608 - test tables


class CountingStore:
    """Our store port around a real store, counting the calls made to it."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await method(*args, **kwargs)

        return counted
