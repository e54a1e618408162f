"""Which key a store is opened with, and when a store may be new.

A store and its key file belong together: the key file is created with the store, and a store
is read only with the key it was written with. So:

- an existing store (it has a schema) is opened with the key file that is there, checked against
  its key check before anything is written (a missing or other key is refused: KeyFileError);
- a store with no schema is new, and gets a new key file; but a SQLite store that is missing or
  empty while its key file exists is a lost store (deleted, truncated, replaced), never silently
  a new one (issue 8, item 12): it is refused, naming both files and the ways out;
- a PostgreSQL database with no schema beside an existing key file is the store of a second
  instance starting with the key the first one shares with it: allowed.

The decision is made again under the store's write lock (`migrations.migrate_to_head` calls the
`StoreKeys` with what it finds there), so two processes creating one store at once agree on one
key, and a key file this open created is removed again when the store could not be created
(nothing was written with it), so a failed first start (a full disk) does not leave a key that
the next start would take for a lost store's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable
from pathlib import Path

from tokenpost.adapters.crypto import Cipher, create_key, load_key
from tokenpost.adapters.migrations import SchemaState
from tokenpost.adapters.store_schema import lost_store, wrong_key


class StoreKeys:
    """The key of one store being opened. Called under the write lock, it is a
    `migrations.KeyChooser`."""

    def __init__(self, key_path: Path, sqlite_path: Path | None, where: str) -> None:
        self._key_path = key_path
        self._sqlite_path = sqlite_path  # None: not a SQLite file (PostgreSQL)
        self._where = where
        self._created = False

    def refuse_if_lost(self, *, missing: bool) -> None:
        """Refuse a SQLite store that is `missing` (else: empty) while its key file exists.

        Raises:
            StoreError: naming both files, and how to restore the store or start a new one.
        """
        if self._sqlite_path is not None and _exists(self._key_path):
            raise lost_store(self._sqlite_path, self._key_path, missing=missing)

    def check_existing(self, state: SchemaState) -> None:
        """Before anything is written: an existing store's key file must be its key.

        Raises:
            KeyFileError: the key file is missing, unsafe, malformed or another key.
        """
        if not state.is_new:
            self._existing(state)

    def __call__(self, state: SchemaState) -> Cipher:
        """The cipher for the store in `state`, as found under the write lock.

        Raises:
            KeyFileError: as `check_existing`; or the new key file cannot be written.
            StoreError: a SQLite store with no schema beside an existing key file.
        """
        if not state.is_new:
            return self._existing(state)
        self.refuse_if_lost(missing=False)
        try:
            cipher = create_key(self._key_path)
        except FileExistsError:
            self.refuse_if_lost(missing=False)
            return load_key(self._key_path, create=False)  # PostgreSQL: a second instance
        self._created = True
        return cipher

    async def discarding_on_error(self, opening: Awaitable[Cipher]) -> Cipher:
        """Await `opening` (the migration, in its transaction); if it fails, remove the key file
        this open created, before the transaction rolls back (nothing was written with it)."""
        try:
            return await opening
        except BaseException:
            if self._created:
                with contextlib.suppress(FileNotFoundError):
                    self._key_path.unlink()
                self._created = False
            raise

    def _existing(self, state: SchemaState) -> Cipher:
        cipher = load_key(self._key_path, create=False)
        if state.key_check is not None and not cipher.matches_key_check(state.key_check):
            raise wrong_key(self._key_path, self._where)
        return cipher


def _exists(path: Path) -> bool:
    """True for a file, and for a symbolic link even if its target is gone (a secret mount)."""
    return path.exists() or path.is_symlink()
