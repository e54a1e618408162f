"""The queries of `account_ports.AccountStore`, for `SqlStore` (SQLite and PostgreSQL alike).

Each function runs on a connection `SqlStore` opened: reads on a plain connection, writes in one
write transaction (SQLite: ``BEGIN IMMEDIATE``, so writers queue; PostgreSQL: the rows a decision
depends on are read ``FOR UPDATE``, or an advisory lock is held). Every row is written sealed with
its MAC (`store_mac`) and read through `account_records`.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tokenpost.account_ports import AccountRecord, ApiTokenRecord
from tokenpost.accounts import Account, ApiTokenInfo, Role
from tokenpost.adapters import account_records as rows
from tokenpost.adapters import store_records as records
from tokenpost.adapters.crypto import Cipher
from tokenpost.adapters.migrations import api_tokens_table, web_accounts_table
from tokenpost.adapters.store_mac import sealed
from tokenpost.errors import NotFoundError, UsageError
from tokenpost.ports import DamagedRecord

_PG_FIRST_ACCOUNT_LOCK: Final = 0x746F6B656E6164  # "tokenad": adding the first account
_accounts = web_accounts_table
_tokens = api_tokens_table


async def _select(conn: AsyncConnection, query: sa.Select[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in (await conn.execute(query)).mappings()]


def _by_name(table: sa.Table) -> sa.Select[Any]:
    return sa.select(table).order_by(table.c.name)


# --- accounts -----------------------------------------------------------------------------------


async def list_accounts(conn: AsyncConnection, cipher: Cipher) -> list[Account]:
    found = records.intact(rows.ACCOUNTS, cipher, await _select(conn, _by_name(_accounts)))
    return [record.account for record in found]


async def get_account(conn: AsyncConnection, cipher: Cipher, name: str) -> AccountRecord | None:
    query = sa.select(_accounts).where(_accounts.c.name == name)
    found = await _select(conn, query)
    return records.read(rows.ACCOUNTS, cipher, found[0]) if found else None


async def add_account(
    conn: AsyncConnection, cipher: Cipher, account: Account, password_hash: str
) -> None:
    row = sealed(cipher, _accounts.name, rows.account_to_row(account, password_hash))
    try:
        await conn.execute(sa.insert(_accounts).values(**row))
    except sa.exc.IntegrityError:
        raise UsageError(
            "there is already a web account {name!r}; choose another name, or change its"
            " password with 'tokenpost admin passwd {name}'",
            name=account.name,
        ) from None


async def add_first_account(
    conn: AsyncConnection, cipher: Cipher, account: Account, password_hash: str
) -> bool:
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_FIRST_ACCOUNT_LOCK)))
    count = (await conn.execute(sa.select(sa.func.count()).select_from(_accounts))).scalar()
    if count:
        return False
    await add_account(conn, cipher, account, password_hash)
    return True


async def set_password_hash(
    conn: AsyncConnection, cipher: Cipher, name: str, password_hash: str, expected: str | None
) -> bool:
    query = sa.select(_accounts).where(_accounts.c.name == name).with_for_update()
    found = await _select(conn, query)
    if not found:
        raise NotFoundError("there is no web account {name!r}", name=name)
    record = records.read(rows.ACCOUNTS, cipher, found[0])  # a damaged row's role is unknown
    if expected is not None and record.password_hash != expected:
        return False
    row = sealed(cipher, _accounts.name, rows.account_to_row(record.account, password_hash))
    await conn.execute(sa.update(_accounts).where(_accounts.c.name == name).values(**row))
    return True


async def delete_account(conn: AsyncConnection, cipher: Cipher, name: str) -> None:
    # Every row is locked: two administrators removed at once cannot both see the other remain.
    every = await _select(conn, _by_name(_accounts).with_for_update())
    if not any(row.get("name") == name for row in every):
        raise NotFoundError("there is no web account {name!r}", name=name)
    admins = [a.name for a in _intact_accounts(cipher, every) if a.role is Role.ADMIN]
    if admins == [name]:
        raise UsageError(
            "{name!r} is the last administrator; add another administrator first"
            " ('tokenpost admin add NAME'), then remove this one",
            name=name,
        )
    await conn.execute(sa.delete(_accounts).where(_accounts.c.name == name))


def _intact_accounts(cipher: Cipher, found: list[dict[str, Any]]) -> list[Account]:
    return [record.account for record in records.intact(rows.ACCOUNTS, cipher, found)]


# --- API tokens ---------------------------------------------------------------------------------


async def list_api_tokens(conn: AsyncConnection, cipher: Cipher) -> list[ApiTokenRecord]:
    return records.intact(rows.API_TOKENS, cipher, await _select(conn, _by_name(_tokens)))


async def add_api_token(
    conn: AsyncConnection, cipher: Cipher, info: ApiTokenInfo, digest: str
) -> None:
    row = sealed(cipher, _tokens.name, rows.api_token_to_row(info, digest))
    try:
        await conn.execute(sa.insert(_tokens).values(**row))
    except sa.exc.IntegrityError:
        raise UsageError(
            "there is already an API token {name!r}; choose another name, or revoke it first"
            " with 'tokenpost admin token revoke {name}'",
            name=info.name,
        ) from None


async def delete_api_token(conn: AsyncConnection, name: str) -> None:
    if (await conn.execute(sa.delete(_tokens).where(_tokens.c.name == name))).rowcount == 0:
        raise NotFoundError("there is no API token {name!r}", name=name)


# --- damage -------------------------------------------------------------------------------------


async def damaged_accounts(conn: AsyncConnection, cipher: Cipher) -> list[DamagedRecord]:
    found = records.damaged(rows.ACCOUNTS, cipher, await _select(conn, _by_name(_accounts)))
    return found + records.damaged(rows.API_TOKENS, cipher, await _select(conn, _by_name(_tokens)))
