"""Row MACs: every settings and token row is authenticated with the store's key (issue 8, item 6).

The secrets in a row are AES-GCM blobs bound to their row (`crypto`), but its plain columns —
a mail server's `security`, a token's `binding` or verification URI — could be changed by anyone
who can write the database file. So each row carries, in its `mac` column, an HMAC-SHA256 (key
derived from the store key, `crypto.Cipher.mac`) over a canonical encoding of

    the table name, then every other column, in the order of the column names,

so a changed value, a value moved from another row or table, or a row renamed (its primary key
is one of the columns) no longer authenticates. A row with a missing or wrong MAC is *damaged*:
the store refuses to use it (`store_records`).

The encoding is independent of the database and the driver: both `SqlStore` (SQLAlchemy, SQLite
or PostgreSQL) and `SqliteReader` (stdlib sqlite3) get the same bytes from the same row.

- A NULL column is left out, exactly like a column that does not exist, so a migration may add
  a nullable column without touching the MACs; a migration that adds a column with a value, or
  changes one, must check the old MAC and write a new one.
- Numbers are written as decimal text, a float that holds an integer as that integer, and a
  boolean as 0 or 1: SQLite returns a boolean as an integer, PostgreSQL as a bool, and each
  means the same stored value. A column's text and bytes keep their type: '5' is not 5.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tokenpost.adapters.crypto import Cipher

MAC_COLUMN: Final = "mac"
_PREFIX: Final = b"tokenpost row mac v1\x00"


def row_mac(cipher: Cipher, table: str, row: Mapping[str, object]) -> bytes:
    """The MAC of `row` (its `mac` column, if any, is not part of it) in `table`."""
    return cipher.mac(canonical_row(table, row))


def sealed(cipher: Cipher, table: str, row: Mapping[str, object]) -> dict[str, object]:
    """`row` with its MAC in `MAC_COLUMN`: the form every row is written in."""
    return {**row, MAC_COLUMN: row_mac(cipher, table, row)}


def authentic(cipher: Cipher, table: str, row: Mapping[str, object]) -> bool:
    """True when the row's `mac` column is the MAC of the row (a missing MAC is not)."""
    try:
        message = canonical_row(table, row)
    except TypeError:
        return False  # a value of a kind no column of ours holds
    return cipher.mac_matches(message, row.get(MAC_COLUMN))


def canonical_row(table: str, row: Mapping[str, object]) -> bytes:
    """The bytes a row's MAC covers: length-prefixed table name, then per non-NULL column its
    length-prefixed name, a type letter and its length-prefixed value.

    Raises:
        TypeError: a value that is not a number, text or bytes.
    """
    columns = _COLUMNS.get(tuple(row))
    if columns is None:
        columns = _columns(tuple(row))
    parts = [_PREFIX, _framed(table.encode())]
    add = parts.append
    for name, label in columns:
        value = row[name]
        if value is None:
            continue
        # The common types inlined (as `_typed` encodes them): a status reads every row.
        if type(value) is str:
            kind, data = b"s", value.encode("utf-8", "surrogatepass")
        elif type(value) is int:
            kind, data = b"n", str(value).encode()
        elif type(value) is bytes:
            kind, data = b"b", value
        else:
            kind, data = _typed(value)
        add(label)
        add(kind)
        add(len(data).to_bytes(4, "big"))
        add(data)
    return b"".join(parts)


# Per set of column names (in a row's order): the names but `mac`, sorted, each with its framed
# encoding. A store's rows come in a few shapes, so this stays small.
_COLUMNS: dict[tuple[str, ...], tuple[tuple[str, bytes], ...]] = {}


def _columns(names: tuple[str, ...]) -> tuple[tuple[str, bytes], ...]:
    columns = tuple((name, _framed(name.encode())) for name in sorted(names) if name != MAC_COLUMN)
    if len(_COLUMNS) < _MAX_SHAPES:
        _COLUMNS[names] = columns
    return columns


_MAX_SHAPES: Final = 64


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def _typed(value: object) -> tuple[bytes, bytes]:
    if isinstance(value, bool | int):
        return b"n", str(int(value)).encode()
    if isinstance(value, float):
        return b"n", (str(int(value)) if value.is_integer() else repr(value)).encode()
    if isinstance(value, str):
        return b"s", value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes | bytearray | memoryview):
        return b"b", bytes(value)
    raise TypeError(f"a store column cannot hold a {type(value).__name__}")
