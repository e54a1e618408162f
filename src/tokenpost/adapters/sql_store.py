"""The store: settings and token states in SQLite (default) or PostgreSQL, via SQLAlchemy 2 Core.

Theory of operation:

- Opening checks before it writes. It reads the schema revision and the key check without
  writing; a schema newer than this code, a file that is not SQLite, or a key that is not the one
  the store was written with is refused, and nothing is changed. Only a store with no schema yet
  may create the key file. Then Alembic migrates to head and the key check is written, in one
  transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: under an advisory lock), and the key is
  checked again inside it, so two processes opening a new store at once agree on one key.
- Token writes are compare-and-set on `version` in one statement (DESIGN invariant 1): UPDATE …
  WHERE version = expected, or INSERT when expected is 0, where a duplicate key means another
  writer won. Either way the loser gets ConflictError and must re-read.
- Every `Secret` is encrypted (`crypto.Cipher`) with the row it belongs to as associated data:
  a token's secrets as one blob with the setting id, a provider's client secret with
  ``provider:NAME``, a mail password with ``SETTING_ID:password`` (DESIGN invariant 2).
- Engines, supported URLs and SQLite's connection set-up (WAL, busy timeout, BEGIN IMMEDIATE for
  writes) are in `sql_engine`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tokenpost.adapters import store_codec as codec
from tokenpost.adapters.crypto import Cipher, load_key
from tokenpost.adapters.home import Home
from tokenpost.adapters.migrations import (
    SchemaState,
    alerts_table,
    migrate_to_head,
    pop_table,
    providers_table,
    read_schema_state,
    smtp_table,
    tokens_table,
    wrong_key,
)
from tokenpost.adapters.sql_engine import (
    WRITE_OPTION,
    create_private_file,
    describe,
    make_engine,
    mapped_errors,
    parse_url,
    sqlite_file,
    sqlite_url,
)
from tokenpost.adapters.store_schema import check_setting_id, token_record
from tokenpost.errors import ConflictError, NotFoundError, UsageError
from tokenpost.ports import DamagedRecord, Store, TokenRecord
from tokenpost.settings.model import (
    POP_PREFIX,
    AlertSettings,
    PopSetting,
    Provider,
    SmtpSetting,
)
from tokenpost.tokens.state import TokenState


async def open_store(home: Home, *, url: str | None = None) -> SqlStore:
    """Open (creating if needed) the store and migrate it to the current schema.

    Args:
        home: the checked home; the SQLite file and the key file live there by default.
        url: a SQLAlchemy URL, e.g. ``postgresql+psycopg://user@host/db``; None is the SQLite
            file ``home.db_path``.

    Raises:
        KeyFileError: the key file is missing, unsafe, malformed or not this store's key.
        StoreCorruptError: not a database, or a schema newer than this tokenpost.
        StoreError: the database cannot be reached or written.
    """
    target = parse_url(url) if url is not None else sqlite_url(home.db_path)
    where = describe(target)
    sqlite_path = sqlite_file(target)
    if sqlite_path is not None and not sqlite_path.exists():
        create_private_file(sqlite_path)  # empty: the probe finds no schema, like a new file
    probe = await _probe(target, where)
    cipher = load_key(home.key_path, create=probe.revision is None)
    if probe.key_check is not None and not cipher.matches_key_check(probe.key_check):
        raise wrong_key(home.key_path, where)
    engine = make_engine(target, wal=True)
    try:
        with mapped_errors(where):
            async with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
                await migrate_to_head(conn, cipher, key_path=home.key_path, where=where)
    except BaseException:
        await engine.dispose()
        raise
    return SqlStore(engine, cipher, where=where)


class SqlStore:
    """`ports.Store` on SQLAlchemy Core (async). Build it with `open_store`."""

    def __init__(self, engine: AsyncEngine, cipher: Cipher, *, where: str) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._cipher = cipher
        self._where = where

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._engine.dispose()

    # --- providers ------------------------------------------------------------------------------

    async def damaged_records(self) -> list[DamagedRecord]:
        """Settings records that cannot be read or authenticated (none are detected yet)."""
        return []

    async def list_providers(self) -> list[Provider]:
        query = sa.select(providers_table).order_by(providers_table.c.name)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [codec.provider_from_row(row, self._cipher) for row in rows]

    async def get_provider(self, name: str) -> Provider | None:
        query = sa.select(providers_table).where(providers_table.c.name == name)
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else codec.provider_from_row(row, self._cipher)

    async def put_provider(self, provider: Provider) -> None:
        row = codec.provider_to_row(provider, self._cipher)
        async with self._write() as conn:
            await conn.execute(_upsert(conn, providers_table, row))

    async def delete_provider(self, name: str) -> None:
        """Raises NotFoundError for an unknown name, UsageError while a setting uses it."""
        async with self._write() as conn:
            users = await _provider_users(conn, name)
            if users:
                raise UsageError(
                    f"provider {name!r} is used by {', '.join(users)};"
                    f" change or delete those settings first"
                )
            query = sa.delete(providers_table).where(providers_table.c.name == name)
            try:
                deleted = (await conn.execute(query)).rowcount
            except sa.exc.IntegrityError:
                # The foreign key caught a setting that started using it after the check above.
                raise UsageError(f"provider {name!r} is in use; try again") from None
            if deleted == 0:
                raise NotFoundError(f"there is no provider {name!r}")

    # --- mail settings --------------------------------------------------------------------------

    async def get_smtp(self) -> SmtpSetting | None:
        async with self._read() as conn:
            row = (await conn.execute(sa.select(smtp_table))).mappings().first()
        return None if row is None else codec.smtp_from_row(row, self._cipher)

    async def put_smtp(self, setting: SmtpSetting) -> None:
        """Raises NotFoundError when `setting.provider` names no provider."""
        row = {"id": 1, **codec.smtp_to_row(setting, self._cipher)}
        async with self._write() as conn:
            await _require_provider(conn, setting.provider)
            await _execute_referencing(conn, _upsert(conn, smtp_table, row), setting.provider)

    async def list_pop(self) -> list[PopSetting]:
        query = sa.select(pop_table).order_by(pop_table.c.name)
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [codec.pop_from_row(row, self._cipher) for row in rows]

    async def get_pop(self, name: str) -> PopSetting | None:
        query = sa.select(pop_table).where(pop_table.c.name == name)
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else codec.pop_from_row(row, self._cipher)

    async def put_pop(self, setting: PopSetting) -> None:
        """Raises NotFoundError when `setting.provider` names no provider."""
        row = codec.pop_to_row(setting, self._cipher)
        async with self._write() as conn:
            await _require_provider(conn, setting.provider)
            await _execute_referencing(conn, _upsert(conn, pop_table, row), setting.provider)

    async def delete_pop(self, name: str) -> None:
        """Delete the POP setting and its token. Raises NotFoundError for an unknown name."""
        async with self._write() as conn:
            query = sa.delete(pop_table).where(pop_table.c.name == name)
            if (await conn.execute(query)).rowcount == 0:
                raise NotFoundError(f"there is no POP setting {name!r}")
            setting_id = POP_PREFIX + name
            await conn.execute(
                sa.delete(tokens_table).where(tokens_table.c.setting_id == setting_id)
            )

    # --- alert settings -------------------------------------------------------------------------

    async def get_alerts(self) -> AlertSettings:
        """The alert settings; never written reads as `AlertSettings()`."""
        async with self._read() as conn:
            row = (await conn.execute(sa.select(alerts_table))).mappings().first()
        return AlertSettings() if row is None else codec.alerts_from_row(row, self._cipher)

    async def put_alerts(self, alerts: AlertSettings) -> None:
        row = {"id": 1, **codec.alerts_to_row(alerts, self._cipher)}
        async with self._write() as conn:
            await conn.execute(_upsert(conn, alerts_table, row))

    # --- tokens ---------------------------------------------------------------------------------

    async def load_token(self, setting_id: str) -> TokenRecord:
        """The stored token; a setting never written reads as NotAcquired at version 0."""
        check_setting_id(setting_id)
        query = sa.select(tokens_table).where(tokens_table.c.setting_id == setting_id)
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().first()
        return token_record(self._cipher, setting_id, row)

    async def save_token(
        self, setting_id: str, state: TokenState, *, binding: str, expected_version: int
    ) -> TokenRecord:
        """Write if the stored version is still `expected_version` (0: never written).

        Raises:
            ConflictError: another writer changed the token since it was read at that version.
        """
        check_setting_id(setting_id)
        if expected_version < 0:
            raise UsageError("expected_version must be 0 or more")
        public, secrets = codec.encode_state(state)
        blob = self._encrypt_secrets(setting_id, secrets)
        now = time.time()
        values = {
            "state": state.id.value,
            "public": codec.dumps(public),
            "secrets": blob,
            "binding": binding,
            "version": expected_version + 1,
            "updated_at": now,
        }
        if expected_version == 0:
            await self._insert_token(setting_id, values)
        else:
            await self._update_token(setting_id, values, expected_version)
        return TokenRecord(setting_id, state, binding, expected_version + 1, now)

    async def _insert_token(self, setting_id: str, values: dict[str, Any]) -> None:
        query = sa.insert(tokens_table).values(setting_id=setting_id, **values)
        async with self._write() as conn:
            try:
                await conn.execute(query)
            except sa.exc.IntegrityError:
                # The primary key exists: another writer saved first.
                raise _conflict(setting_id, 0) from None

    async def _update_token(self, setting_id: str, values: dict[str, Any], expected: int) -> None:
        query = (
            sa.update(tokens_table)
            .where(tokens_table.c.setting_id == setting_id, tokens_table.c.version == expected)
            .values(**values)
        )
        async with self._write() as conn:
            if (await conn.execute(query)).rowcount != 1:
                raise _conflict(setting_id, expected)

    def _encrypt_secrets(self, setting_id: str, secrets: dict[str, str]) -> bytes | None:
        if not secrets:
            return None
        return self._cipher.encrypt(codec.dumps(secrets).encode(), aad=setting_id.encode())

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        with mapped_errors(self._where):
            async with self._engine.connect() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        with mapped_errors(self._where):
            async with self._writer.begin() as conn:
                yield conn


# --- helpers ------------------------------------------------------------------------------------


def _conflict(setting_id: str, expected: int) -> ConflictError:
    return ConflictError(
        f"the token of {setting_id} changed since it was read (at version {expected});"
        f" re-read it and decide again"
    )


async def _provider_users(conn: AsyncConnection, name: str) -> list[str]:
    smtp = await conn.execute(sa.select(smtp_table.c.id).where(smtp_table.c.provider == name))
    pops = await conn.execute(
        sa.select(pop_table.c.name).where(pop_table.c.provider == name).order_by(pop_table.c.name)
    )
    users = ["smtp"] if smtp.first() is not None else []
    return users + [POP_PREFIX + pop_name for pop_name in pops.scalars()]


async def _require_provider(conn: AsyncConnection, name: str | None) -> None:
    if name is None:
        return
    query = sa.select(providers_table.c.name).where(providers_table.c.name == name)
    if (await conn.execute(query)).first() is None:
        raise NotFoundError(f"there is no provider {name!r}; add it first")


async def _execute_referencing(
    conn: AsyncConnection, statement: sa.Insert, provider: str | None
) -> None:
    """Write a setting row; a foreign-key failure means its provider was deleted meanwhile."""
    try:
        await conn.execute(statement)
    except sa.exc.IntegrityError:
        raise NotFoundError(f"there is no provider {provider!r}; add it first") from None


def _upsert(conn: AsyncConnection, table: sa.Table, row: dict[str, object]) -> sa.Insert:
    """INSERT … ON CONFLICT (primary key) DO UPDATE, in the dialect's own syntax."""
    keys = [column.name for column in table.primary_key]
    insert = (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)
    statement = insert.values(**row)
    updates = {name: statement.excluded[name] for name in row if name not in keys}
    return statement.on_conflict_do_update(index_elements=keys, set_=updates)


async def _probe(target: sa.URL, where: str) -> SchemaState:
    """Read the schema revision and key check without writing anything."""
    engine = make_engine(target, wal=False, pool=sa.pool.NullPool)
    try:
        with mapped_errors(where):
            async with engine.connect() as conn:
                return await read_schema_state(conn, where)
    finally:
        await engine.dispose()


if TYPE_CHECKING:

    def _implements_store(store: SqlStore) -> Store:  # mypy checks SqlStore against the port
        return store
