"""What every reader of the store shares without SQLAlchemy or Alembic: the schema head, the key
check row, and the errors for a wrong key, a lost store and a failing driver.

`sql_store` (SQLAlchemy, read-write) and `sqlite_reader` (stdlib sqlite3, read-only) both use
these, and both read rows through `store_records`, so the two give the same answers and the same
errors.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from tokenpost.errors import KeyFileError, StoreCorruptError, StoreError, UsageError
from tokenpost.settings.model import parse_setting_id

# The newest migration in migrations/versions/ (a test compares it with Alembic's head). A store
# at this revision needs no migration, so opening it needs no Alembic.
HEAD_REVISION: Final = "0006"
KEY_CHECK: Final = "key_check"  # the meta row holding the key check
# The store's revision (0006), as the readers on the standard library's sqlite3 read it.
REVISION_QUERY: Final = "SELECT n FROM revision WHERE id = 1"


def wrong_key(key_path: Path, where: str) -> KeyFileError:
    return KeyFileError(
        "the key file {key} is not the key the store {store} was written with;"
        " restore the right key file (or set TOKENPOST_KEY_FILE to it)",
        key=str(key_path),
        store=where,
    )


def lost_store(db_path: Path, key_path: Path, *, missing: bool) -> StoreError:
    """The refusal to start a new SQLite store beside an existing key (issue 8, item 12): the
    key means a store was written with it, so a missing or empty database file is a lost store,
    not a new one."""
    if missing:
        return StoreError(
            "the store {store} does not exist, but the key file {key} does: the settings and"
            " tokens written with that key are gone from here. Restore {store} from a backup,"
            " or move the key file {key} away to start a new, empty store",
            store=str(db_path),
            key=str(key_path),
        )
    return StoreError(
        "the store {store} is empty, but the key file {key} exists: the settings and tokens"
        " written with that key are not in it. Restore {store} from a backup, or move the key"
        " file {key} away to start a new, empty store",
        store=str(db_path),
        key=str(key_path),
    )


def check_setting_id(setting_id: str) -> None:
    """Raises UsageError when `setting_id` is not ``smtp`` or ``pop:NAME``."""
    try:
        parse_setting_id(setting_id)
    except ValueError as exc:
        raise UsageError(
            "{setting!r} is not a setting id: {reason}", setting=setting_id, reason=str(exc)
        ) from None


# Both stores wait this long for another process's write lock before giving up.
BUSY_TIMEOUT_S: Final = 10.0


def driver_error(where: str, text: str, kind: str) -> StoreError:
    """The StoreError for a database driver's error `text` (its first line is safe to show:
    the store never sends a secret to the database in plaintext). `kind` names the error
    class when the driver gave no text."""
    text = text.strip()
    detail = text.splitlines()[0] if text else kind
    if "file is not a database" in text or "malformed" in text:
        return StoreCorruptError(
            "{store} is not a readable tokenpost database ({detail}); move it away to start"
            " a new store, or restore it from a backup",
            store=where,
            detail=detail,
        )
    if "database is locked" in text:
        return StoreError(
            "the store {store} stayed locked by another process for {seconds} s",
            store=where,
            seconds=format(BUSY_TIMEOUT_S, "g"),
        )
    return StoreError("the store {store} failed: {detail}", store=where, detail=detail)


@contextlib.contextmanager
def sqlite_errors(where: str) -> Iterator[None]:
    """The standard library's sqlite3 errors as `sql_store` maps its driver's (same classes,
    same messages), for the readers that use sqlite3 directly."""
    try:
        yield
    except sqlite3.Error as exc:
        raise driver_error(where, str(exc), type(exc).__name__) from exc
