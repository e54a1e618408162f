"""Web account and API token rows on real databases: sealed with the row MAC like every other
row, so a row changed outside tokenpost — a viewer made an administrator, a password hash or a
token digest replaced, a row renamed — is refused as damaged and never honoured, and affects no
other row. The fast reader (SQLite, stdlib) still reads a store at this schema."""

from __future__ import annotations

import hashlib

import pytest

from store_support import SQLITE_ONLY, Backend, reseal
from tokenpost.accounts import Account, ApiTokenInfo, Role
from tokenpost.adapters.sql_store import SqlStore
from tokenpost.adapters.sqlite_reader import open_sqlite_reader
from tokenpost.errors import DamagedRecordError, NotFoundError, UsageError
from tokenpost.i18n import translator

ALICE = Account("alice", Role.ADMIN, 1_700_000_000.5)
VIEWER = Account("vera", Role.VIEWER, 1_700_000_001.0)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
CI = ApiTokenInfo("ci", Role.VIEWER, 1_700_000_002.0)
DIGEST = hashlib.sha256(b"tpat_example").hexdigest()


@pytest.fixture
async def filled(store: SqlStore) -> SqlStore:
    await store.add_account(ALICE, HASH)
    await store.add_account(VIEWER, HASH + "v")
    await store.add_api_token(CI, DIGEST)
    return store


async def test_rows_read_back_as_written(filled: SqlStore) -> None:
    assert await filled.list_accounts() == [ALICE, VIEWER]
    record = await filled.get_account("vera")
    assert record is not None
    assert (record.account, record.password_hash) == (VIEWER, HASH + "v")
    assert await filled.get_account("nobody") is None
    (token,) = await filled.list_api_tokens()
    assert (token.info, token.digest) == (CI, DIGEST)
    assert await filled.damaged_accounts() == []


async def test_every_row_has_a_mac(filled: SqlStore, backend: Backend) -> None:
    for table in ("web_accounts", "api_tokens"):
        assert backend.execute(f"SELECT count(*) FROM {table} WHERE mac IS NULL") == [(0,)]  # noqa: S608


async def test_a_viewer_made_administrator_outside_tokenpost_is_refused(
    filled: SqlStore, backend: Backend
) -> None:
    backend.execute("UPDATE web_accounts SET role = 'administrator' WHERE name = 'vera'")
    assert await filled.list_accounts() == [ALICE]
    with pytest.raises(DamagedRecordError, match=r"web account 'vera'.*changed outside tokenpost"):
        await filled.get_account("vera")
    (damaged,) = await filled.damaged_accounts()
    assert damaged.record_id == "account:vera"
    assert "tokenpost admin remove vera" in str(damaged.reason)
    assert "tokenpost admin remove vera" in damaged.reason.translate(translator("de").gettext)
    # It does not count as an administrator: alice is still the last one.
    with pytest.raises(UsageError, match="last administrator"):
        await filled.delete_account("alice")
    # A damaged row cannot be given a new password (its role is unknown), but it can be removed.
    with pytest.raises(DamagedRecordError):
        await filled.set_password_hash("vera", HASH)
    await filled.delete_account("vera")
    assert await filled.damaged_accounts() == []


async def test_a_replaced_password_hash_is_refused(filled: SqlStore, backend: Backend) -> None:
    backend.execute("UPDATE web_accounts SET password_hash = ? WHERE name = 'alice'", ("$x",))
    with pytest.raises(DamagedRecordError):
        await filled.get_account("alice")
    assert await filled.list_accounts() == [VIEWER]


async def test_a_row_copied_under_another_name_is_refused(
    filled: SqlStore, backend: Backend
) -> None:
    backend.execute(
        "INSERT INTO web_accounts (name, role, password_hash, created_at, mac)"
        " SELECT 'mallory', role, password_hash, created_at, mac FROM web_accounts"
        " WHERE name = 'alice'"
    )
    assert [d.record_id for d in await filled.damaged_accounts()] == ["account:mallory"]
    assert [a.name for a in await filled.list_accounts()] == ["alice", "vera"]


async def test_a_changed_api_token_is_refused(filled: SqlStore, backend: Backend) -> None:
    forged = hashlib.sha256(b"tpat_forged").hexdigest()
    backend.execute("UPDATE api_tokens SET digest = ? WHERE name = 'ci'", (forged,))
    assert await filled.list_api_tokens() == []
    assert [d.record_id for d in await filled.damaged_accounts()] == ["api_token:ci"]
    backend.execute("UPDATE api_tokens SET digest = ?, role = 'administrator'", (DIGEST,))
    assert await filled.list_api_tokens() == []
    await filled.delete_api_token("ci")  # revoking a damaged token works
    assert await filled.damaged_accounts() == []


async def test_a_resealed_row_reads_again(filled: SqlStore, backend: Backend) -> None:
    # Only the MAC is judged: a row sealed with the store's key is authentic whatever it holds.
    backend.execute("UPDATE web_accounts SET role = 'administrator' WHERE name = 'vera'")
    reseal(backend, "web_accounts", "name", "vera")
    assert (await filled.list_accounts())[1].role is Role.ADMIN


async def test_an_unknown_role_is_damage_even_with_a_valid_mac(
    filled: SqlStore, backend: Backend
) -> None:
    backend.execute("UPDATE web_accounts SET role = 'root' WHERE name = 'vera'")
    reseal(backend, "web_accounts", "name", "vera")
    with pytest.raises(DamagedRecordError, match="no known role"):
        await filled.get_account("vera")


async def test_names_are_taken_once_and_unknown_names_are_not_found(filled: SqlStore) -> None:
    with pytest.raises(UsageError, match="already a web account 'alice'"):
        await filled.add_account(ALICE, HASH)
    with pytest.raises(UsageError, match="already an API token 'ci'"):
        await filled.add_api_token(CI, DIGEST)
    with pytest.raises(NotFoundError):
        await filled.delete_account("nobody")
    with pytest.raises(NotFoundError):
        await filled.set_password_hash("nobody", HASH)
    with pytest.raises(NotFoundError):
        await filled.delete_api_token("nobody")
    assert not await filled.add_first_account(Account("admin", Role.ADMIN, 1.0), HASH)


async def test_a_password_hash_is_replaced_only_while_it_is_the_expected_one(
    filled: SqlStore,
) -> None:
    assert not await filled.set_password_hash("alice", "$new", expected="$other")
    assert await filled.set_password_hash("alice", "$new", expected=HASH)
    record = await filled.get_account("alice")
    assert record is not None
    assert (record.account, record.password_hash) == (ALICE, "$new")


@SQLITE_ONLY
async def test_the_fast_reader_reads_a_store_with_accounts(
    filled: SqlStore, backend: Backend
) -> None:
    reader = open_sqlite_reader(backend.home)
    assert reader is not None
    try:
        assert await reader.get_smtp() is None
    finally:
        await reader.close()
