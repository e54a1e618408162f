"""What every reader of the store shares without SQLAlchemy or Alembic: the schema head, the key
check row, the wrong-key error and the decoding of a token row.

`sql_store` (SQLAlchemy, read-write) and `sqlite_reader` (stdlib sqlite3, read-only) both use
these, so the two give the same answers and the same errors. Encryption follows DESIGN
invariant 2: a token's secrets are one AES-GCM blob with the setting id as associated data.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from tokenpost.adapters import store_codec as codec
from tokenpost.adapters.crypto import Cipher
from tokenpost.errors import KeyFileError, StoreCorruptError, StoreError, UsageError
from tokenpost.ports import TokenRecord
from tokenpost.settings.model import parse_setting_id
from tokenpost.tokens.state import NotAcquired, TokenState

# The newest migration in migrations/versions/ (a test compares it with Alembic's head). A store
# at this revision needs no migration, so opening it needs no Alembic.
HEAD_REVISION: Final = "0002"
KEY_CHECK: Final = "key_check"  # the meta row holding the key check


def wrong_key(key_path: Path, where: str) -> KeyFileError:
    return KeyFileError(
        f"the key file {key_path} is not the key the store {where} was written with;"
        f" restore the right key file (or set TOKENPOST_KEY_FILE to it)"
    )


def check_setting_id(setting_id: str) -> None:
    """Raises UsageError when `setting_id` is not ``smtp`` or ``pop:NAME``."""
    try:
        parse_setting_id(setting_id)
    except ValueError as exc:
        raise UsageError(f"{setting_id!r} is not a setting id: {exc}") from None


def decode_token(
    cipher: Cipher, setting_id: str, public_text: str, blob: bytes | None
) -> TokenState:
    """A token state from its row's `public` JSON and encrypted `secrets` blob.

    Raises:
        StoreCorruptError: the JSON is unreadable or the blob does not authenticate.
    """
    public = codec.loads_object(public_text, "the public part")
    secrets: dict[str, Any] = {}
    if blob is not None:
        plaintext = cipher.decrypt(bytes(blob), aad=setting_id.encode())
        secrets = codec.loads_object(plaintext, "the encrypted part")
    return codec.decode_state(public, secrets)


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
            f"{where} is not a readable tokenpost database ({detail}); move it away to start"
            f" a new store, or restore it from a backup"
        )
    if "database is locked" in text:
        return StoreError(
            f"the store {where} stayed locked by another process for {BUSY_TIMEOUT_S:g} s"
        )
    return StoreError(f"the store {where} failed: {detail}")


def token_record(cipher: Cipher, setting_id: str, row: Mapping[Any, Any] | None) -> TokenRecord:
    """A `tokens` row as a TokenRecord; no row reads as Not acquired at version 0."""
    if row is None:
        return TokenRecord(setting_id, NotAcquired(), binding="", version=0, updated_at=0.0)
    try:
        state = decode_token(cipher, setting_id, row["public"], row["secrets"])
    except StoreCorruptError as exc:
        raise StoreCorruptError(f"the token of {setting_id}: {exc}") from None
    return TokenRecord(
        setting_id,
        state,
        binding=row["binding"],
        version=row["version"],
        updated_at=row["updated_at"],
    )
