"""Row MACs (store_mac): what a row's MAC covers, and that nothing else changes it."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.adapters.crypto import MAC_BYTES, Cipher
from tokenpost.adapters.store_mac import (
    MAC_COLUMN,
    authentic,
    canonical_row,
    row_mac,
    sealed,
)

KEY = bytes(range(32))
CIPHER = Cipher(KEY)
ROW: dict[str, object] = {
    "name": "fax",
    "server": "pop.example",
    "port": 995,
    "security": "tls",
    "password": b"\x00blob",
    "leave_on_server": False,
    "command": None,
}


def test_the_mac_key_is_derived_from_the_store_key() -> None:
    # HMAC-SHA256(HMAC-SHA256(key, "tokenpost row mac v1"), message), as the module promises.
    mac_key = hmac.new(KEY, b"tokenpost row mac v1", hashlib.sha256).digest()
    message = canonical_row("pop", ROW)
    assert row_mac(CIPHER, "pop", ROW) == hmac.new(mac_key, message, hashlib.sha256).digest()
    assert len(row_mac(CIPHER, "pop", ROW)) == MAC_BYTES
    assert row_mac(CIPHER, "pop", ROW) != hmac.new(KEY, message, hashlib.sha256).digest()


def test_a_sealed_row_authenticates_and_its_mac_is_not_part_of_it() -> None:
    row = sealed(CIPHER, "pop", ROW)
    assert authentic(CIPHER, "pop", row)
    assert row[MAC_COLUMN] == row_mac(CIPHER, "pop", row)  # the mac column is left out


@pytest.mark.parametrize(
    "change",
    [
        {"security": "none"},
        {"port": 110},
        {"server": "pop.example "},
        {"password": b"\x00blob\x00"},
        {"password": None},
        {"command": "lp"},
        {"leave_on_server": True},
        {"name": "other"},  # the primary key: a row renamed is another row
        {"extra": "column"},
        {"port": "995"},  # text is not a number
    ],
)
def test_any_changed_column_is_refused(change: dict[str, object]) -> None:
    row = sealed(CIPHER, "pop", ROW)
    assert not authentic(CIPHER, "pop", {**row, **change})


def test_a_row_moved_to_another_table_or_key_is_refused() -> None:
    row = sealed(CIPHER, "pop", ROW)
    assert not authentic(CIPHER, "smtp", row)
    assert not authentic(Cipher(bytes(32)), "pop", row)


@pytest.mark.parametrize("mac", [None, b"", b"x" * MAC_BYTES, "text", 42])
def test_a_missing_or_wrong_mac_is_refused(mac: object) -> None:
    assert not authentic(CIPHER, "pop", {**ROW, MAC_COLUMN: mac})


def test_drivers_spellings_of_one_value_are_one_value() -> None:
    # SQLite returns booleans as 0/1 and may give REAL columns back as floats; PostgreSQL gives
    # bool and bytes, psycopg memoryview for bytea in some paths.
    row = sealed(CIPHER, "pop", ROW)
    assert authentic(CIPHER, "pop", {**row, "leave_on_server": 0})
    assert authentic(CIPHER, "pop", {**row, "port": 995.0})
    assert authentic(CIPHER, "pop", {**row, "password": memoryview(b"\x00blob")})
    assert authentic(CIPHER, "pop", {**row, "password": bytearray(b"\x00blob")})


def test_a_null_column_is_an_absent_column() -> None:
    # So a migration may add a nullable column without computing the MACs again.
    without = {k: v for k, v in ROW.items() if k != "command"}
    assert row_mac(CIPHER, "pop", without) == row_mac(CIPHER, "pop", ROW)
    assert row_mac(CIPHER, "pop", {**ROW, "new_column": None}) == row_mac(CIPHER, "pop", ROW)


def test_the_column_order_does_not_matter() -> None:
    reordered = dict(reversed(list(ROW.items())))
    assert row_mac(CIPHER, "pop", reordered) == row_mac(CIPHER, "pop", ROW)


def test_a_value_of_an_unknown_kind_is_refused() -> None:
    with pytest.raises(TypeError, match="list"):
        row_mac(CIPHER, "pop", {**ROW, "port": [995]})
    assert not authentic(CIPHER, "pop", {**sealed(CIPHER, "pop", ROW), "port": [995]})


_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.binary(max_size=8))


@given(
    first=st.dictionaries(st.sampled_from("abc"), _VALUES, max_size=3),
    second=st.dictionaries(st.sampled_from("abc"), _VALUES, max_size=3),
)
def test_the_encoding_is_unambiguous(first: dict[str, object], second: dict[str, object]) -> None:
    # Two rows encode alike only when they hold the same non-NULL values of the same kinds.
    def meaning(row: dict[str, object]) -> dict[str, tuple[str, object]]:
        return {k: (type(v).__name__, v) for k, v in row.items() if v is not None}

    same = canonical_row("t", first) == canonical_row("t", second)
    assert same == (meaning(first) == meaning(second))


def test_names_and_values_cannot_be_shifted_into_each_other() -> None:
    assert canonical_row("t", {"ab": "c"}) != canonical_row("t", {"a": "bc"})
    assert canonical_row("ta", {"b": "c"}) != canonical_row("t", {"ab": "c"})


def test_the_canonical_encoding_is_fixed() -> None:
    # Every stored MAC was written over these bytes: a faster encoder must give the same ones
    # (length-prefixed table; per column in name order: name, type letter, value; NULL left out).
    row = {**ROW, "ratio": 2.5, "whole": 3.0, "text": "Grüße"}
    assert canonical_row("pop", row) == bytes.fromhex(
        "746f6b656e706f737420726f77206d61632076310000000003706f700000000f6c656176655f6f6e5f7365"
        "727665726e0000000130000000046e616d6573000000036661780000000870617373776f72646200000005"
        "00626c6f6200000004706f72746e0000000339393500000005726174696f6e00000003322e350000000873"
        "656375726974797300000003746c7300000006736572766572730000000b706f702e6578616d706c650000"
        "00047465787473000000074772c3bcc39f650000000577686f6c656e0000000133"
    )
