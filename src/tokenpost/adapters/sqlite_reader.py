"""A read-only view of the default SQLite store over the stdlib `sqlite3`, for fast commands.

`token status` only reads, so it need not pay for SQLAlchemy, aiosqlite or Alembic, nor for the
write transaction `sql_store.open_store` runs. This reader opens the file with SQLite's
``mode=ro`` URI, so it never writes a byte; it reads the same tables, decodes rows with the same
codec (`store_codec`) through the same `store_records`, and checks, decrypts and authenticates
rows with the same key (`crypto`, `store_mac`; DESIGN invariant 2). Errors and damaged records
are those of `SqlStore`: a file that is not SQLite is StoreCorruptError, a wrong or missing key
is KeyFileError, a damaged settings row is DamagedRecordError, each with the same message.

`open_sqlite_reader` returns None when the store is not exactly at `HEAD_REVISION` with a key
check (no file yet, an empty file, an older or newer schema): the caller then opens the full
store, which creates, migrates or refuses it (a lost store beside its key file, for one).
Queries are blocking calls on a local file; each method but `damaged_records` is one SELECT, so
each answer is one consistent snapshot (as with `SqlStore`, whose reads are also one statement
each); `damaged_records` reads each settings table once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from tokenpost.adapters import store_records as records
from tokenpost.adapters.crypto import Cipher, load_key
from tokenpost.adapters.home import Home
from tokenpost.adapters.store_records import RowReader
from tokenpost.adapters.store_schema import (
    BUSY_TIMEOUT_S,
    HEAD_REVISION,
    KEY_CHECK,
    REVISION_QUERY,
    check_setting_id,
    sqlite_errors,
    wrong_key,
)
from tokenpost.errors import UsageError
from tokenpost.ports import DamagedRecord, TokenRecord
from tokenpost.settings.model import AlertSettings, PopSetting, Provider, SmtpSetting
from tokenpost.tokens.state import TokenState

if TYPE_CHECKING:
    from tokenpost.ports import Store


_Row = dict[str, Any]
_T = TypeVar("_T")

# What `damaged_records` reads, in its order: the SMTP setting, POP settings and providers by
# name, the alert settings (as `SqlStore`).
_SETTINGS_QUERIES: Final[tuple[tuple[records.Kind[Any], str], ...]] = (
    (records.SMTP, "SELECT * FROM smtp"),
    (records.POP, "SELECT * FROM pop ORDER BY name"),
    (records.PROVIDERS, "SELECT * FROM providers ORDER BY name"),
    (records.ALERTS, "SELECT * FROM alerts"),
)


def open_sqlite_reader(home: Home) -> SqliteReader | None:
    """Open the home's SQLite store read-only, or None when it needs the full store.

    Raises:
        KeyFileError: the key file is missing, unsafe, malformed or not this store's key.
        StoreCorruptError: the file is not a database.
        StoreError: the file cannot be read.
    """
    path = home.db_path
    if not path.is_file():
        return None
    where = str(path)
    conn = connect_read_only(path, where)
    try:
        cipher = _checked_cipher(conn, home, where)
    except BaseException:
        conn.close()
        raise
    if cipher is None:
        conn.close()
        return None
    return SqliteReader(conn, cipher, where=where)


def connect_read_only(path: Path, where: str) -> sqlite3.Connection:
    """A read-only connection to the SQLite file `path`, in autocommit: every SELECT is its
    own read transaction and sees the latest commit. Usable from any thread.

    Raises:
        StoreError: the file cannot be opened.
    """
    with sqlite_errors(where):
        return sqlite3.connect(
            path.absolute().as_uri() + "?mode=ro",
            uri=True,
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
        )


def _checked_cipher(conn: sqlite3.Connection, home: Home, where: str) -> Cipher | None:
    """The store's cipher, its key checked as `open_store` checks it; None if not current."""
    key_check = _current_key_check(conn, where)
    if key_check is None:
        return None
    cipher = load_key(home.key_path, create=False)
    if not cipher.matches_key_check(key_check):
        raise wrong_key(home.key_path, where)
    return cipher


def _current_key_check(conn: sqlite3.Connection, where: str) -> bytes | None:
    """The key check of a store at `HEAD_REVISION`; None for any other store."""
    with sqlite_errors(where):
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"alembic_version", "meta"} <= tables:
            return None
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if revision is None or revision[0] != HEAD_REVISION:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (KEY_CHECK,)).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


class SqliteReader:
    """The read methods of `ports.Store` on a read-only SQLite connection; writes are refused.

    Build it with `open_sqlite_reader`; close it when done.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        cipher: Cipher,
        *,
        where: str,
        row_reader: RowReader | None = None,
    ) -> None:
        self._conn = conn
        self._cipher = cipher
        # Remembers what each row read to; a store that also reads otherwise shares its own.
        self._records = row_reader or RowReader(cipher)
        self._where = where

    async def close(self) -> None:
        self._conn.close()

    # --- reads: the same queries and answers as SqlStore ----------------------------------------

    async def revision(self) -> int:
        return int(self._select(REVISION_QUERY)[0]["n"])

    async def damaged_records(self) -> list[DamagedRecord]:
        """The settings records that do not authenticate or cannot be decoded."""
        found: list[DamagedRecord] = []
        for kind, query in _SETTINGS_QUERIES:
            found += self._records.damaged(kind, self._select(query))
        return found

    async def list_providers(self) -> list[Provider]:
        rows = self._select("SELECT * FROM providers ORDER BY name")
        return self._records.intact(records.PROVIDERS, rows)

    async def get_provider(self, name: str) -> Provider | None:
        return self._get(records.PROVIDERS, "SELECT * FROM providers WHERE name = ?", name)

    async def get_smtp(self) -> SmtpSetting | None:
        return self._get(records.SMTP, "SELECT * FROM smtp LIMIT 1")

    async def list_pop(self) -> list[PopSetting]:
        rows = self._select("SELECT * FROM pop ORDER BY name")
        return self._records.intact(records.POP, rows)

    async def get_pop(self, name: str) -> PopSetting | None:
        return self._get(records.POP, "SELECT * FROM pop WHERE name = ?", name)

    async def get_alerts(self) -> AlertSettings:
        """The alert settings; never written reads as `AlertSettings()`."""
        alerts = self._get(records.ALERTS, "SELECT * FROM alerts LIMIT 1")
        return AlertSettings() if alerts is None else alerts

    async def load_token(self, setting_id: str) -> TokenRecord:
        """The stored token; a setting never written reads as NotAcquired at version 0, a
        damaged token as Invalid at its stored version."""
        check_setting_id(setting_id)
        rows = self._select("SELECT * FROM tokens WHERE setting_id = ?", setting_id)
        return self._records.token_record(setting_id, rows[0] if rows else None)

    async def load_tokens(self) -> list[TokenRecord]:
        """Every stored token in one query, each read as `load_token` reads it."""
        rows = self._select("SELECT * FROM tokens ORDER BY setting_id")
        return self._records.token_records(rows)

    # --- writes: refused --------------------------------------------------------------------------

    async def put_provider(self, provider: Provider) -> None:
        raise self._read_only()

    async def delete_provider(self, name: str) -> None:
        raise self._read_only()

    async def put_smtp(self, setting: SmtpSetting) -> None:
        raise self._read_only()

    async def put_pop(self, setting: PopSetting) -> None:
        raise self._read_only()

    async def delete_pop(self, name: str) -> None:
        raise self._read_only()

    async def put_alerts(self, alerts: AlertSettings) -> None:
        raise self._read_only()

    async def save_token(
        self, setting_id: str, state: TokenState, *, binding: str, expected_version: int
    ) -> TokenRecord:
        raise self._read_only()

    def _read_only(self) -> UsageError:
        return UsageError(
            "the store {store} was opened read-only; this command cannot write", store=self._where
        )

    def _get(self, kind: records.Kind[_T], query: str, *params: object) -> _T | None:
        rows = self._select(query, *params)
        return self._records.read(kind, rows[0]) if rows else None

    def _select(self, query: str, *params: object) -> list[_Row]:
        """Rows as column-name mappings, the shape the codec reads."""
        with sqlite_errors(self._where):
            cursor = self._conn.execute(query, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


if TYPE_CHECKING:

    def _implements_store(store: SqliteReader) -> Store:  # mypy checks it against the port
        return store
