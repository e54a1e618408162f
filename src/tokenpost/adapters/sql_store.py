"""The store: settings and token states in SQLite (default) or PostgreSQL, via SQLAlchemy 2 Core.

Theory of operation:

- Opening checks before it writes. It reads the schema revision and the key check without
  writing; a schema newer than this code, a file that is not SQLite, or a key that is not the one
  the store was written with is refused, and nothing is changed. Then Alembic migrates to head
  and the key check is written, in one transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
  under an advisory lock); the key is chosen again inside it (`sql_keys`), so two processes
  opening a new store at once agree on one key. Only a store with no schema yet may create the
  key file, and a SQLite store that is missing or empty beside an existing key file is refused:
  it is a lost store, not a new one.
- Token writes are compare-and-set on `version` in one statement (DESIGN invariant 1): UPDATE …
  WHERE version = expected, or INSERT when expected is 0, where a duplicate key means another
  writer won. Either way the loser gets ConflictError and must re-read.
- Every `Secret` is encrypted (`crypto.Cipher`) with the row it belongs to as associated data:
  a token's secrets as one blob with the setting id, a provider's client secret with
  ``provider:NAME``, a mail password with ``SETTING_ID:password`` (DESIGN invariant 2).
- Every settings and token row is written with a MAC over all its columns (`store_mac`) and read
  through `store_records`: a row that does not authenticate or decode is damaged, and affects
  only its own record (listings leave it out, a damaged token reads as Invalid).
- Web accounts and API tokens (`account_ports.AccountStore`) are rows like the others, sealed
  and read the same way; their queries are in `sql_accounts`.
- Engines, supported URLs and SQLite's connection set-up (WAL, busy timeout, BEGIN IMMEDIATE for
  writes) are in `sql_engine`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tokenpost.account_ports import AccountRecord, AccountStore, ApiTokenRecord
from tokenpost.accounts import Account, ApiTokenInfo
from tokenpost.adapters import sql_accounts as accounts
from tokenpost.adapters import store_codec as codec
from tokenpost.adapters import store_records as records
from tokenpost.adapters.crypto import Cipher
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
from tokenpost.adapters.sql_keys import StoreKeys
from tokenpost.adapters.sql_reads import SqlReads
from tokenpost.adapters.sqlite_reader import SqliteReader, connect_read_only
from tokenpost.adapters.sqlite_token_writer import SqliteTokenWriter
from tokenpost.adapters.store_mac import sealed
from tokenpost.adapters.store_schema import check_setting_id
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
        StoreError: the database cannot be reached or written, or a SQLite store is missing or
            empty beside an existing key file (a lost store, not a new one).
    """
    target = parse_url(url) if url is not None else sqlite_url(home.db_path)
    where = describe(target)
    sqlite_path = sqlite_file(target)
    keys = StoreKeys(home.key_path, sqlite_path, where)
    if sqlite_path is not None and not sqlite_path.exists():
        keys.refuse_if_lost(missing=True)  # before creating anything
        create_private_file(sqlite_path)  # empty: the probe finds no schema, like a new file
    keys.check_existing(await _probe(target, where))
    engine = make_engine(target, wal=True)
    try:
        with mapped_errors(where):
            async with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
                cipher = await keys.discarding_on_error(migrate_to_head(conn, keys, where=where))
    except BaseException:
        await engine.dispose()
        raise
    if sqlite_path is None:
        return SqlStore(engine, cipher, where=where)
    try:
        local = connect_read_only(sqlite_path, where)
        try:
            writer = SqliteTokenWriter(sqlite_path, where=where)
        except BaseException:
            local.close()
            raise
    except BaseException:
        await engine.dispose()
        raise
    return SqlStore(engine, cipher, where=where, local=local, token_writer=writer)


class SqlStore:
    """`ports.Store` and `account_ports.AccountStore` on SQLAlchemy Core (async). Build it with
    `open_store`.

    The settings and token reads of a SQLite file go through the standard library on the
    caller's thread (`SqliteReader` on `local`, a read-only connection in autocommit): through
    the async driver each read is a pooled connection, BEGIN, the SELECT, the fetch and a
    rollback, each a hop to the driver's thread (about 1.5 ms of CPU for one token); here it is
    one SELECT of microseconds. In WAL mode (every tokenpost store) a reader never waits for a
    writer, so the event loop is not held up by another process's write. Its token writes, a
    refresh's one write, are one hop to a thread of their own (`SqliteTokenWriter`, given as
    `token_writer`). Other writes, and every PostgreSQL read and write, go through SQLAlchemy
    (`SqlReads`).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        cipher: Cipher,
        *,
        where: str,
        local: sqlite3.Connection | None = None,
        token_writer: SqliteTokenWriter | None = None,
    ) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self._cipher = cipher
        self._where = where
        self._token_writer = token_writer
        # Remembers what each row read to (`store_records.RowReader`).
        row_reader = records.RowReader(cipher)
        self._reads: _Reads = (
            SqlReads(engine, row_reader, where=where)
            if local is None
            else SqliteReader(local, cipher, where=where, row_reader=row_reader)
        )

    async def __aenter__(self) -> SqlStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._reads.close()
        if self._token_writer is not None:
            await self._token_writer.close()
        await self._engine.dispose()

    # --- reads ----------------------------------------------------------------------------------

    async def revision(self) -> int:
        """The count of committed changes of the store's records (0006's triggers)."""
        return await self._reads.revision()

    async def damaged_records(self) -> list[DamagedRecord]:
        """The settings records that do not authenticate or cannot be decoded: the SMTP
        setting, POP settings by name, providers by name, the alert settings."""
        return await self._reads.damaged_records()

    async def list_providers(self) -> list[Provider]:
        return await self._reads.list_providers()

    async def get_provider(self, name: str) -> Provider | None:
        return await self._reads.get_provider(name)

    async def get_smtp(self) -> SmtpSetting | None:
        return await self._reads.get_smtp()

    async def list_pop(self) -> list[PopSetting]:
        return await self._reads.list_pop()

    async def get_pop(self, name: str) -> PopSetting | None:
        return await self._reads.get_pop(name)

    async def get_alerts(self) -> AlertSettings:
        """The alert settings; never written reads as `AlertSettings()`."""
        return await self._reads.get_alerts()

    async def load_token(self, setting_id: str) -> TokenRecord:
        """The stored token; a setting never written reads as NotAcquired at version 0, a
        damaged token as Invalid at its stored version."""
        return await self._reads.load_token(setting_id)

    async def load_tokens(self) -> list[TokenRecord]:
        """Every stored token in one query, each read as `load_token` reads it."""
        return await self._reads.load_tokens()

    # --- providers ------------------------------------------------------------------------------

    async def put_provider(self, provider: Provider) -> None:
        row = self._sealed(providers_table, codec.provider_to_row(provider, self._cipher))
        async with self._write() as conn:
            await conn.execute(_upsert(conn, providers_table, row))

    async def delete_provider(self, name: str) -> None:
        """Raises NotFoundError for an unknown name, UsageError while a setting uses it."""
        async with self._write() as conn:
            users = await _provider_users(conn, name)
            if users:
                raise UsageError(
                    "provider {name!r} is used by {users}; change or delete those settings first",
                    name=name,
                    users=", ".join(users),
                )
            query = sa.delete(providers_table).where(providers_table.c.name == name)
            try:
                deleted = (await conn.execute(query)).rowcount
            except sa.exc.IntegrityError:
                # The foreign key caught a setting that started using it after the check above.
                raise UsageError("provider {name!r} is in use; try again", name=name) from None
            if deleted == 0:
                raise NotFoundError("there is no provider {name!r}", name=name)

    # --- mail settings --------------------------------------------------------------------------

    async def put_smtp(self, setting: SmtpSetting) -> None:
        """Raises NotFoundError when `setting.provider` names no provider."""
        row = self._sealed(smtp_table, {"id": 1, **codec.smtp_to_row(setting, self._cipher)})
        async with self._write() as conn:
            await _require_provider(conn, setting.provider)
            await _execute_referencing(conn, _upsert(conn, smtp_table, row), setting.provider)

    async def put_pop(self, setting: PopSetting) -> None:
        """Raises NotFoundError when `setting.provider` names no provider."""
        row = self._sealed(pop_table, codec.pop_to_row(setting, self._cipher))
        async with self._write() as conn:
            await _require_provider(conn, setting.provider)
            await _execute_referencing(conn, _upsert(conn, pop_table, row), setting.provider)

    async def delete_pop(self, name: str) -> None:
        """Delete the POP setting and its token. Raises NotFoundError for an unknown name."""
        async with self._write() as conn:
            query = sa.delete(pop_table).where(pop_table.c.name == name)
            if (await conn.execute(query)).rowcount == 0:
                raise NotFoundError("there is no POP setting {name!r}", name=name)
            setting_id = POP_PREFIX + name
            await conn.execute(
                sa.delete(tokens_table).where(tokens_table.c.setting_id == setting_id)
            )

    # --- alert settings -------------------------------------------------------------------------

    async def put_alerts(self, alerts: AlertSettings) -> None:
        row = self._sealed(alerts_table, {"id": 1, **codec.alerts_to_row(alerts, self._cipher)})
        async with self._write() as conn:
            await conn.execute(_upsert(conn, alerts_table, row))

    # --- tokens ---------------------------------------------------------------------------------

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
        now = time.time()
        row = self._sealed(
            tokens_table,
            {
                "setting_id": setting_id,
                "state": state.id.value,
                "public": codec.dumps(public),
                "secrets": self._encrypt_secrets(setting_id, secrets),
                "binding": binding,
                "version": expected_version + 1,
                "updated_at": now,
            },
        )
        if self._token_writer is not None:
            if not await self._token_writer.write(row, expected_version=expected_version):
                raise _conflict(setting_id, expected_version)
        elif expected_version == 0:
            await self._insert_token(row)
        else:
            await self._update_token(row, expected_version)
        return TokenRecord(setting_id, state, binding, expected_version + 1, now)

    async def _insert_token(self, row: dict[str, Any]) -> None:
        setting_id = row["setting_id"]
        async with self._write() as conn:
            try:
                result = await conn.execute(_insert_over_damaged_version(conn, row))
            except sa.exc.IntegrityError:
                # The primary key exists: another writer saved first.
                raise _conflict(setting_id, 0) from None
            if conn.dialect.name == "sqlite" and result.rowcount != 1:
                raise _conflict(setting_id, 0)  # the same, seen by SQLite's upsert

    async def _update_token(self, row: dict[str, Any], expected: int) -> None:
        setting_id = row["setting_id"]
        query = (
            sa.update(tokens_table)
            .where(tokens_table.c.setting_id == setting_id, tokens_table.c.version == expected)
            .values(**row)
        )
        async with self._write() as conn:
            if (await conn.execute(query)).rowcount != 1:
                raise _conflict(setting_id, expected)

    # --- web accounts and API tokens ------------------------------------------------------------

    async def list_accounts(self) -> list[Account]:
        async with self._read() as conn:
            return await accounts.list_accounts(conn, self._cipher)

    async def get_account(self, name: str) -> AccountRecord | None:
        async with self._read() as conn:
            return await accounts.get_account(conn, self._cipher, name)

    async def add_account(self, account: Account, password_hash: str) -> None:
        async with self._write() as conn:
            await accounts.add_account(conn, self._cipher, account, password_hash)

    async def add_first_account(self, account: Account, password_hash: str) -> bool:
        async with self._write() as conn:
            return await accounts.add_first_account(conn, self._cipher, account, password_hash)

    async def set_password_hash(
        self, name: str, password_hash: str, *, expected: str | None = None
    ) -> bool:
        async with self._write() as conn:
            return await accounts.set_password_hash(
                conn, self._cipher, name, password_hash, expected
            )

    async def delete_account(self, name: str) -> None:
        async with self._write() as conn:
            await accounts.delete_account(conn, self._cipher, name)

    async def list_api_tokens(self) -> list[ApiTokenRecord]:
        async with self._read() as conn:
            return await accounts.list_api_tokens(conn, self._cipher)

    async def add_api_token(self, info: ApiTokenInfo, digest: str) -> None:
        async with self._write() as conn:
            await accounts.add_api_token(conn, self._cipher, info, digest)

    async def delete_api_token(self, name: str) -> None:
        async with self._write() as conn:
            await accounts.delete_api_token(conn, name)

    async def damaged_accounts(self) -> list[DamagedRecord]:
        async with self._read() as conn:
            return await accounts.damaged_accounts(conn, self._cipher)

    def _encrypt_secrets(self, setting_id: str, secrets: dict[str, str]) -> bytes | None:
        if not secrets:
            return None
        return self._cipher.encrypt(codec.dumps(secrets).encode(), aad=setting_id.encode())

    def _sealed(self, table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
        return sealed(self._cipher, table.name, row)

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
        "the token of {setting} changed since it was read (at version {version});"
        " re-read it and decide again",
        setting=setting_id,
        version=expected,
    )


def _insert_over_damaged_version(conn: AsyncConnection, row: dict[str, Any]) -> sa.Insert:
    """The first write of a token (compare-and-set at version 0).

    A row whose version is not an integer (only SQLite can hold one: it was changed outside
    tokenpost) reads as version 0, so it is overwritten here; any other existing row makes the
    INSERT fail on the primary key (raising IntegrityError, or changing no row on SQLite).
    """
    if conn.dialect.name != "sqlite":
        return sa.insert(tokens_table).values(**row)
    statement = sqlite.insert(tokens_table).values(**row)
    return statement.on_conflict_do_update(
        index_elements=[tokens_table.c.setting_id],
        set_={name: statement.excluded[name] for name in row if name != "setting_id"},
        where=sa.func.typeof(tokens_table.c.version) != "integer",
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
        raise NotFoundError("there is no provider {name!r}; add it first", name=name)


async def _execute_referencing(
    conn: AsyncConnection, statement: sa.Insert, provider: str | None
) -> None:
    """Write a setting row; a foreign-key failure means its provider was deleted meanwhile."""
    try:
        await conn.execute(statement)
    except sa.exc.IntegrityError:
        raise NotFoundError("there is no provider {name!r}; add it first", name=provider) from None


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


class _Reads(Protocol):
    """What `SqlStore` reads through: `SqlReads` or, for a SQLite file, `SqliteReader`."""

    async def close(self) -> None: ...
    async def revision(self) -> int: ...
    async def damaged_records(self) -> list[DamagedRecord]: ...
    async def list_providers(self) -> list[Provider]: ...
    async def get_provider(self, name: str) -> Provider | None: ...
    async def get_smtp(self) -> SmtpSetting | None: ...
    async def list_pop(self) -> list[PopSetting]: ...
    async def get_pop(self, name: str) -> PopSetting | None: ...
    async def get_alerts(self) -> AlertSettings: ...
    async def load_token(self, setting_id: str) -> TokenRecord: ...
    async def load_tokens(self) -> list[TokenRecord]: ...


if TYPE_CHECKING:

    def _implements_store(store: SqlStore) -> Store:  # mypy checks SqlStore against the port
        return store

    def _implements_account_store(store: SqlStore) -> AccountStore:  # and against this one
        return store
