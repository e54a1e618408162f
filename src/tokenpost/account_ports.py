"""The ports of web accounts and API tokens (`services.accounts`): where they are kept and how
passwords are hashed. `wiring` builds the adapters (`adapters.sql_store`, `adapters.argon2_hasher`).

Like the settings records (`ports.SettingsStore`), every account and API token row is
authenticated with the store's key: a row changed outside tokenpost — a viewer made an
administrator, a password hash or a token digest replaced — is *damaged*. A damaged row is left
out of every listing and never authenticates anyone; `damaged_accounts` names it with the fix,
and removing it works as for an intact one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tokenpost.accounts import Account, ApiTokenInfo
from tokenpost.ports import DamagedRecord
from tokenpost.secret import Secret


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """A stored account with its password hash (a PHC string; never shown: not in its repr)."""

    account: Account
    password_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ApiTokenRecord:
    """A stored API token with the SHA-256 digest (hex) of the token (not in its repr)."""

    info: ApiTokenInfo
    digest: str = field(repr=False)


class AccountStore(Protocol):
    """Web accounts and API tokens. Listings hold the intact rows only, by name."""

    async def revision(self) -> int:
        """As `ports.Store.revision`: it changes with every committed change of an account or
        API token too."""
        ...

    async def list_accounts(self) -> list[Account]: ...

    async def get_account(self, name: str) -> AccountRecord | None:
        """None for an unknown name. Raises DamagedRecordError for a damaged row."""
        ...

    async def add_account(self, account: Account, password_hash: str) -> None:
        """Raises UsageError when an account of that name exists (damaged or not)."""
        ...

    async def add_first_account(self, account: Account, password_hash: str) -> bool:
        """Add the account only when there is no account row at all; False when there is."""
        ...

    async def set_password_hash(
        self, name: str, password_hash: str, *, expected: str | None = None
    ) -> bool:
        """Replace the account's password hash; with `expected`, only while the stored hash is
        still that one (False otherwise: it changed meanwhile).

        Raises:
            NotFoundError: no account of that name.
            DamagedRecordError: the row is damaged (its role cannot be trusted to be kept).
        """
        ...

    async def delete_account(self, name: str) -> None:
        """Remove the account, damaged or not, in one transaction with the check that another
        intact administrator remains.

        Raises:
            NotFoundError: no account of that name.
            UsageError: it is the last intact administrator.
        """
        ...

    async def list_api_tokens(self) -> list[ApiTokenRecord]: ...

    async def add_api_token(self, info: ApiTokenInfo, digest: str) -> None:
        """Raises UsageError when an API token of that name exists (damaged or not)."""
        ...

    async def delete_api_token(self, name: str) -> None:
        """Remove the API token, damaged or not. Raises NotFoundError for an unknown name."""
        ...

    async def damaged_accounts(self) -> list[DamagedRecord]:
        """The damaged account rows (``account:NAME``), then the damaged API token rows
        (``api_token:NAME``), each by name, with the reason and the fix."""
        ...


class PasswordHasher(Protocol):
    """Password hashing (argon2id). Hashing and verifying take real CPU time and memory: the
    adapter runs them off the event loop."""

    async def hash(self, password: Secret) -> str:
        """A new salted hash of `password` (a PHC string)."""
        ...

    async def verify(self, password_hash: str, password: Secret) -> bool:
        """True when `password` matches `password_hash`; False for a mismatch or a hash that
        cannot be read. Costs the same for either answer."""
        ...

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with weaker parameters than the hasher's own."""
        ...
