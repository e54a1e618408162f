"""Web accounts and API tokens through the `Accounts` service, on real stores (a SQLite file and
PostgreSQL at 127.0.0.1:5432) with the real argon2id hasher at its cheapest parameters.

The hasher is wrapped in a fake of our own port that records each call, so that a test can see
which hash a password was verified against (the dummy one for an unknown name) without measuring
time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import argon2
import pytest

from fakes import FakeClock
from pg_support import fresh_database, store_url
from tokenpost.accounts import Account, ApiTokenInfo, Principal, Role
from tokenpost.adapters.argon2_hasher import Argon2Hasher
from tokenpost.adapters.home import open_home
from tokenpost.adapters.sql_store import SqlStore, open_store
from tokenpost.errors import NotFoundError, UsageError, ValidationError
from tokenpost.secret import Secret
from tokenpost.services.accounts import API_TOKEN_PREFIX, Accounts

CHEAP = argon2.profiles.CHEAPEST
PASSWORD = Secret("correct horse battery")
OTHER = Secret("another good password")


@dataclass
class RecordingHasher:
    """Our `PasswordHasher` port over the real argon2id adapter, recording every call."""

    inner: Argon2Hasher = field(default_factory=lambda: Argon2Hasher(CHEAP))
    hashed: int = 0
    verified: list[str] = field(default_factory=list)  # the hashes verified against

    async def hash(self, password: Secret) -> str:
        self.hashed += 1
        return await self.inner.hash(password)

    async def verify(self, password_hash: str, password: Secret) -> bool:
        self.verified.append(password_hash)
        return await self.inner.verify(password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.inner.needs_rehash(password_hash)


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    with fresh_database("tokenpost_accounts") as name:
        yield name


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    home = open_home(tmp_path / "home", {})
    url = None
    if request.param == "postgres":
        database: str = request.getfixturevalue("postgres_database")
        url = store_url(database)
        import psycopg

        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    async with await open_store(home, url=url) as opened:
        yield opened


@pytest.fixture
def hasher() -> RecordingHasher:
    return RecordingHasher()


@pytest.fixture
def accounts(store: SqlStore, hasher: RecordingHasher) -> Accounts:
    return Accounts(store, hasher, FakeClock(1_700_000_000.0))


# --- accounts -----------------------------------------------------------------------------------


async def test_an_added_account_signs_in_with_its_password_only(accounts: Accounts) -> None:
    added = await accounts.add("alice", Role.ADMIN, PASSWORD)
    assert added == Account("alice", Role.ADMIN, 1_700_000_000.0)
    assert await accounts.list() == [added]
    assert await accounts.authenticate("alice", PASSWORD) == Principal(
        "alice", Role.ADMIN, "password"
    )
    assert await accounts.authenticate("alice", OTHER) is None
    assert await accounts.authenticate("Alice", PASSWORD) is None


async def test_the_password_is_kept_as_an_argon2id_hash_only(
    accounts: Accounts, store: SqlStore
) -> None:
    await accounts.add("alice", Role.VIEWER, PASSWORD)
    record = await store.get_account("alice")
    assert record is not None
    assert record.password_hash.startswith("$argon2id$")
    assert PASSWORD.reveal() not in record.password_hash
    assert record.password_hash not in repr(record)


async def test_an_unknown_name_is_verified_against_the_dummy_hash(
    accounts: Accounts, hasher: RecordingHasher
) -> None:
    await accounts.add("alice", Role.ADMIN, PASSWORD)
    assert await accounts.authenticate("bob", PASSWORD) is None
    assert await accounts.authenticate("not a valid name", PASSWORD) is None
    assert await accounts.authenticate("alice", OTHER) is None
    assert len(hasher.verified) == 3  # one verification each, known name or not
    dummy = hasher.verified[0]
    assert hasher.verified[1] == dummy
    assert hasher.verified[2] != dummy  # alice's own hash
    assert dummy.startswith("$argon2id$")


async def test_a_password_no_account_can_have_is_not_looked_up(
    accounts: Accounts, hasher: RecordingHasher
) -> None:
    await accounts.add("alice", Role.ADMIN, PASSWORD)
    assert await accounts.authenticate("alice", Secret("x" * 100_000)) is None
    assert await accounts.authenticate("alice", Secret("")) is None
    assert len(hasher.verified) == 2
    assert hasher.verified[0] == hasher.verified[1]  # the dummy hash, both times


async def test_names_and_passwords_must_follow_the_rules(accounts: Accounts) -> None:
    with pytest.raises(ValidationError) as caught:
        await accounts.add("two words", Role.ADMIN, Secret("short"))
    assert [p.field for p in caught.value.problems] == ["name", "password"]
    assert "short" not in str(caught.value)
    assert await accounts.list() == []


async def test_a_name_is_taken_once(accounts: Accounts) -> None:
    await accounts.add("alice", Role.ADMIN, PASSWORD)
    with pytest.raises(UsageError, match="already a web account 'alice'"):
        await accounts.add("alice", Role.VIEWER, OTHER)
    assert await accounts.authenticate("alice", PASSWORD) is not None


async def test_a_new_password_replaces_the_old_one(accounts: Accounts) -> None:
    await accounts.add("alice", Role.VIEWER, PASSWORD)
    await accounts.set_password("alice", OTHER)
    assert await accounts.authenticate("alice", PASSWORD) is None
    assert await accounts.authenticate("alice", OTHER) == Principal(
        "alice", Role.VIEWER, "password"
    )
    with pytest.raises(NotFoundError, match="no web account 'bob'"):
        await accounts.set_password("bob", OTHER)
    with pytest.raises(ValidationError):
        await accounts.set_password("alice", Secret(" " * 20))


async def test_the_last_administrator_cannot_be_removed(accounts: Accounts) -> None:
    await accounts.add("alice", Role.ADMIN, PASSWORD)
    await accounts.add("viewer", Role.VIEWER, PASSWORD)
    with pytest.raises(UsageError, match="'alice' is the last administrator"):
        await accounts.remove("alice")
    await accounts.remove("viewer")
    await accounts.add("bob", Role.ADMIN, PASSWORD)
    await accounts.remove("alice")
    assert [a.name for a in await accounts.list()] == ["bob"]
    with pytest.raises(NotFoundError):
        await accounts.remove("alice")


async def test_two_administrators_removed_at_once_leave_one(accounts: Accounts) -> None:
    await accounts.add("alice", Role.ADMIN, PASSWORD)
    await accounts.add("bob", Role.ADMIN, PASSWORD)
    results = await asyncio.gather(
        accounts.remove("alice"), accounts.remove("bob"), return_exceptions=True
    )
    assert sum(isinstance(r, UsageError) for r in results) == 1
    assert [a.role for a in await accounts.list()] == [Role.ADMIN]


async def test_an_outdated_hash_is_renewed_at_sign_in(store: SqlStore) -> None:
    weak = Accounts(store, RecordingHasher(), FakeClock(1.0))
    await weak.add("alice", Role.ADMIN, PASSWORD)
    old = await store.get_account("alice")
    stronger = RecordingHasher(Argon2Hasher(dataclasses.replace(CHEAP, time_cost=2)))
    assert await Accounts(store, stronger, FakeClock(2.0)).authenticate("alice", PASSWORD)
    new = await store.get_account("alice")
    assert old is not None
    assert new is not None
    assert new.password_hash != old.password_hash
    assert "t=2" in new.password_hash
    assert new.account == old.account
    assert not stronger.needs_rehash(new.password_hash)


async def test_a_hash_changed_meanwhile_is_not_overwritten_by_a_renewal(store: SqlStore) -> None:
    accounts = Accounts(store, RecordingHasher(), FakeClock(1.0))
    await accounts.add("alice", Role.ADMIN, PASSWORD)
    record = await store.get_account("alice")
    assert record is not None
    await accounts.set_password("alice", OTHER)
    assert not await store.set_password_hash("alice", "x", expected=record.password_hash)
    assert await accounts.authenticate("alice", OTHER) is not None


async def test_the_first_start_creates_admin_with_a_random_password_once(
    accounts: Accounts,
) -> None:
    password = await accounts.ensure_first_admin()
    assert password is not None
    assert len(password.reveal()) >= 24
    assert await accounts.list() == [Account("admin", Role.ADMIN, 1_700_000_000.0)]
    assert await accounts.authenticate("admin", password) == Principal(
        "admin", Role.ADMIN, "password"
    )
    assert await accounts.ensure_first_admin() is None


async def test_no_first_admin_when_an_account_exists(accounts: Accounts) -> None:
    await accounts.add("viewer", Role.VIEWER, PASSWORD)
    assert await accounts.ensure_first_admin() is None
    assert [a.name for a in await accounts.list()] == ["viewer"]


async def test_first_admin_started_twice_at_once_is_made_once(store: SqlStore) -> None:
    first = Accounts(store, RecordingHasher(), FakeClock(1.0))
    second = Accounts(store, RecordingHasher(), FakeClock(1.0))
    made = await asyncio.gather(first.ensure_first_admin(), second.ensure_first_admin())
    assert sum(p is not None for p in made) == 1
    assert [a.name for a in await first.list()] == ["admin"]


# --- API tokens ---------------------------------------------------------------------------------


async def test_an_api_token_is_shown_once_and_kept_as_its_digest(
    accounts: Accounts, store: SqlStore
) -> None:
    info, token = await accounts.create_api_token("backup", Role.VIEWER)
    assert info == ApiTokenInfo("backup", Role.VIEWER, 1_700_000_000.0)
    value = token.reveal()
    assert value.startswith(API_TOKEN_PREFIX)
    assert len(value) >= len(API_TOKEN_PREFIX) + 43  # 32 random bytes, URL-safe base64
    assert value not in repr(info)
    assert value not in str(token)
    (record,) = await store.list_api_tokens()
    assert record.digest == hashlib.sha256(value.encode()).hexdigest()
    assert await accounts.list_api_tokens() == [info]
    assert await accounts.authenticate_api_token(token) == Principal(
        "backup", Role.VIEWER, "api_token"
    )


async def test_a_wrong_or_revoked_api_token_signs_in_no_one(accounts: Accounts) -> None:
    _, token = await accounts.create_api_token("ci", Role.ADMIN)
    _, other = await accounts.create_api_token("monitor", Role.VIEWER)
    assert token != other
    assert await accounts.authenticate_api_token(Secret(token.reveal() + "x")) is None
    assert await accounts.authenticate_api_token(Secret("")) is None
    await accounts.revoke_api_token("ci")
    assert await accounts.authenticate_api_token(token) is None
    assert await accounts.authenticate_api_token(other) is not None
    with pytest.raises(NotFoundError, match="no API token 'ci'"):
        await accounts.revoke_api_token("ci")


async def test_api_token_names_follow_the_rule_and_are_taken_once(accounts: Accounts) -> None:
    with pytest.raises(ValidationError) as caught:
        await accounts.create_api_token("no/slash", Role.VIEWER)
    assert [p.field for p in caught.value.problems] == ["name"]
    await accounts.create_api_token("ci", Role.VIEWER)
    with pytest.raises(UsageError, match="already an API token 'ci'"):
        await accounts.create_api_token("ci", Role.ADMIN)


async def test_no_password_or_token_reaches_the_log(
    accounts: Accounts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await accounts.add("alice", Role.ADMIN, PASSWORD)
    await accounts.authenticate("alice", PASSWORD)
    await accounts.authenticate("nobody", OTHER)
    first = await accounts.ensure_first_admin()
    _, token = await accounts.create_api_token("ci", Role.ADMIN)
    await accounts.authenticate_api_token(token)
    await accounts.set_password("alice", OTHER)
    logged = caplog.text
    assert "web account alice added" in logged
    for secret in (PASSWORD, OTHER, token):
        assert secret.reveal() not in logged
    assert first is None
