"""PostgreSQL for tests: the machine's server at 127.0.0.1:5432 (trust auth, user postgres).

Each user gets a fresh database, dropped afterwards; tests skip with the reason when no server
answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_HOST = "127.0.0.1"
PG_PORT = 5432


@contextmanager
def fresh_database(prefix: str = "tokenpost_test") -> Iterator[str]:
    """Create a uniquely named database; drop it (forcing sessions out) on exit."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg (the postgres extra) is not installed")
    from psycopg import sql

    try:
        admin = psycopg.connect(
            host=PG_HOST,
            port=PG_PORT,
            user="postgres",
            dbname="test",
            autocommit=True,
            connect_timeout=3,
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is unreachable at {PG_HOST}:{PG_PORT} (user postgres): {exc}")
    name = f"{prefix}_{secrets.token_hex(6)}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield name
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def store_url(database: str) -> str:
    return f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{database}"
