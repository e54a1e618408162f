"""The reads of `ports.Store` through SQLAlchemy Core (async): a PostgreSQL store's.

A SQLite file's store reads through the standard library instead (`sqlite_reader`); both
answer alike: the same queries, each row read through `store_records` (a damaged settings row
left out of a listing, a damaged token read as Invalid).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tokenpost.adapters import store_records as records
from tokenpost.adapters.migrations import (
    alerts_table,
    pop_table,
    providers_table,
    revision_table,
    smtp_table,
    tokens_table,
)
from tokenpost.adapters.sql_engine import mapped_errors
from tokenpost.adapters.store_schema import check_setting_id
from tokenpost.ports import DamagedRecord, TokenRecord
from tokenpost.settings.model import AlertSettings, PopSetting, Provider, SmtpSetting

_T = TypeVar("_T")


class SqlReads:
    """The settings and token reads on `engine`, each row read through `records`."""

    def __init__(self, engine: AsyncEngine, records: records.RowReader, *, where: str) -> None:
        self._engine = engine
        self._records = records
        self._where = where

    async def close(self) -> None:
        """Nothing of its own to close: the engine is its store's."""

    async def revision(self) -> int:
        """The count of committed changes of the store's records (0006's triggers)."""
        async with self._read() as conn:
            return int((await conn.execute(_REVISION)).scalar_one())

    async def damaged_records(self) -> list[DamagedRecord]:
        """The settings records that do not authenticate or cannot be decoded: the SMTP
        setting, POP settings by name, providers by name, the alert settings."""
        found: list[DamagedRecord] = []
        async with self._read() as conn:
            for kind, table, order in _SETTINGS_TABLES:
                rows = await rows_of(conn, sa.select(table).order_by(*order))
                found += self._records.damaged(kind, rows)
        return found

    async def list_providers(self) -> list[Provider]:
        query = sa.select(providers_table).order_by(providers_table.c.name)
        return self._records.intact(records.PROVIDERS, await self._select(query))

    async def get_provider(self, name: str) -> Provider | None:
        query = sa.select(providers_table).where(providers_table.c.name == name)
        return await self._get(records.PROVIDERS, query)

    async def get_smtp(self) -> SmtpSetting | None:
        return await self._get(records.SMTP, sa.select(smtp_table))

    async def list_pop(self) -> list[PopSetting]:
        query = sa.select(pop_table).order_by(pop_table.c.name)
        return self._records.intact(records.POP, await self._select(query))

    async def get_pop(self, name: str) -> PopSetting | None:
        return await self._get(records.POP, sa.select(pop_table).where(pop_table.c.name == name))

    async def get_alerts(self) -> AlertSettings:
        """The alert settings; never written reads as `AlertSettings()`."""
        alerts = await self._get(records.ALERTS, sa.select(alerts_table))
        return AlertSettings() if alerts is None else alerts

    async def load_token(self, setting_id: str) -> TokenRecord:
        """The stored token; a setting never written reads as NotAcquired at version 0, a
        damaged token as Invalid at its stored version."""
        check_setting_id(setting_id)
        query = sa.select(tokens_table).where(tokens_table.c.setting_id == setting_id)
        rows = await self._select(query)
        return self._records.token_record(setting_id, rows[0] if rows else None)

    async def load_tokens(self) -> list[TokenRecord]:
        """Every stored token in one query, each read as `load_token` reads it."""
        query = sa.select(tokens_table).order_by(tokens_table.c.setting_id)
        return self._records.token_records(await self._select(query))

    async def _get(self, kind: records.Kind[_T], query: sa.Select[Any]) -> _T | None:
        rows = await self._select(query)
        return self._records.read(kind, rows[0]) if rows else None

    async def _select(self, query: sa.Select[Any]) -> list[dict[str, Any]]:
        async with self._read() as conn:
            return await rows_of(conn, query)

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        with mapped_errors(self._where):
            async with self._engine.connect() as conn:
                yield conn


async def rows_of(conn: AsyncConnection, query: sa.Select[Any]) -> list[dict[str, Any]]:
    """Rows as column-name mappings, the shape `store_records` reads (as `SqliteReader`'s)."""
    return [dict(row) for row in (await conn.execute(query)).mappings()]


_REVISION: Final = sa.select(revision_table.c.n).where(revision_table.c.id == 1)

_SETTINGS_TABLES: tuple[tuple[records.Kind[Any], sa.Table, Sequence[sa.Column[Any]]], ...] = (
    (records.SMTP, smtp_table, ()),
    (records.POP, pop_table, (pop_table.c.name,)),
    (records.PROVIDERS, providers_table, (providers_table.c.name,)),
    (records.ALERTS, alerts_table, ()),
)
