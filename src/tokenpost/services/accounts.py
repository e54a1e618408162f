"""Web accounts and API tokens: who may use the web page and the JSON API, and as what.

Passwords are kept only as argon2id hashes (`account_ports.PasswordHasher`); a hash made with
weaker parameters than the hasher's own is replaced at the next successful sign-in. Signing in
with a name that has no (intact) account verifies the password against a dummy hash, so the
answer costs the same whether the name exists or not and does not tell which names exist.

API tokens are ``tpat_`` and 32 random bytes (URL-safe base64): high-entropy, so a SHA-256
digest is enough to keep (no slow hash needed), and the digest of a presented token is compared
with every stored one in constant time. The token itself is returned once, as a `Secret`, when it
is created, and never again.

There is always an administrator: removing the last intact one is refused (`AccountStore`
checks it in the same transaction). Throttling and lockout of sign-ins belong to the web page,
not here.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from typing import Final

from tokenpost.account_ports import AccountRecord, AccountStore, ApiTokenRecord, PasswordHasher
from tokenpost.accounts import (
    Account,
    ApiTokenInfo,
    Principal,
    Role,
    check_account,
    check_password,
    check_token_name,
    is_valid_name,
    password_problems,
)
from tokenpost.clock import Clock
from tokenpost.errors import DamagedRecordError, NotFoundError, StoreError
from tokenpost.ports import DamagedRecord
from tokenpost.secret import Secret
from tokenpost.services.revision_memo import RevisionMemo

log = logging.getLogger("tokenpost.accounts")

API_TOKEN_PREFIX: Final = "tpat_"  # noqa: S105 - a prefix, not a secret
API_TOKEN_BYTES: Final = 32
FIRST_ADMIN: Final = "admin"
_FIRST_PASSWORD_BYTES: Final = 18  # 24 URL-safe characters: well within the password rules
_PLACEHOLDER: Final = Secret("x" * 16)  # verified against the dummy hash: the cost, not a match


def token_digest(token: Secret) -> str:
    """The SHA-256 digest (hex) of an API token, as it is stored."""
    return hashlib.sha256(token.reveal().encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Accounts:
    """Web accounts and API tokens over an `AccountStore` and a `PasswordHasher`."""

    store: AccountStore
    hasher: PasswordHasher
    clock: Clock
    _dummy_hash: str | None = field(default=None, init=False, repr=False)
    # What every web request reads (its API token, its session's account), kept until the
    # store changes (a revoked token or a removed account is refused at the next request).
    _kept: RevisionMemo = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._kept = RevisionMemo(self.store.revision)

    # --- accounts -------------------------------------------------------------------------------

    async def record(self, name: str) -> AccountRecord | None:
        """The stored account `name` (None: there is none), as of the store's last change.
        Raises DamagedRecordError for a damaged row."""
        return await self._kept.get(("account", name), lambda: self.store.get_account(name))

    async def add(self, name: str, role: Role, password: Secret) -> Account:
        """Add an account.

        Raises:
            ValidationError: the name or the password breaks a rule (each field named).
            UsageError: an account of that name exists.
        """
        check_account(name, password)
        account = Account(name, Role(role), self.clock.now())
        await self.store.add_account(account, await self.hasher.hash(password))
        log.info("web account %s added (%s)", name, account.role.value)
        return account

    async def set_password(self, name: str, password: Secret) -> None:
        """Give an account a new password.

        Raises:
            ValidationError: the password breaks a rule.
            NotFoundError: no account of that name.
            DamagedRecordError: its row is damaged: remove it and add it again.
        """
        check_password(password)
        if await self.store.get_account(name) is None:
            raise NotFoundError("there is no web account {name!r}", name=name)
        await self.store.set_password_hash(name, await self.hasher.hash(password))
        log.info("password of web account %s changed", name)

    async def remove(self, name: str) -> None:
        """Remove an account (a damaged one too).

        Raises:
            NotFoundError: no account of that name.
            UsageError: it is the last administrator.
        """
        await self.store.delete_account(name)
        log.info("web account %s removed", name)

    async def list(self) -> list[Account]:
        """The intact accounts by name (`damaged` names the others)."""
        return await self.store.list_accounts()

    async def authenticate(self, name: str, password: Secret) -> Principal | None:
        """The principal when `password` is the account's, else None.

        An unknown, invalid or damaged name, or a password no account can have (it breaks the
        rules: too long, say), costs one verification too, against a dummy hash.
        """
        dummy = await self._dummy()
        record = None
        if is_valid_name(name) and not password_problems(password):
            # No stored password breaks the rules: one that does is not looked up at all.
            try:
                record = await self.store.get_account(name)
            except DamagedRecordError as error:
                log.warning("sign-in as %s refused: %s", name, error)
        if record is None:
            await self.hasher.verify(dummy, _PLACEHOLDER)
            return None
        if not await self.hasher.verify(record.password_hash, password):
            return None
        if self.hasher.needs_rehash(record.password_hash):
            await self._rehash(name, record.password_hash, password)
        return Principal(record.account.name, record.account.role, "password")

    async def ensure_first_admin(self) -> Secret | None:
        """With no account at all, add the administrator ``admin`` with a random password and
        return that password (to show once); else None. A damaged account row counts as an
        account: it is the administrator's to repair, not a reason to add another."""
        if await self.store.list_accounts() or await self.store.damaged_accounts():
            return None
        password = Secret(secrets.token_urlsafe(_FIRST_PASSWORD_BYTES))
        account = Account(FIRST_ADMIN, Role.ADMIN, self.clock.now())
        if not await self.store.add_first_account(account, await self.hasher.hash(password)):
            return None  # another process added an account meanwhile
        log.info("web account %s added (%s)", FIRST_ADMIN, Role.ADMIN.value)
        return password

    # --- API tokens -----------------------------------------------------------------------------

    async def create_api_token(self, name: str, role: Role) -> tuple[ApiTokenInfo, Secret]:
        """A new API token; the Secret is the token, shown once and never kept.

        Raises:
            ValidationError: the name breaks the rule.
            UsageError: an API token of that name exists.
        """
        check_token_name(name)
        token = Secret(API_TOKEN_PREFIX + secrets.token_urlsafe(API_TOKEN_BYTES))
        info = ApiTokenInfo(name, Role(role), self.clock.now())
        await self.store.add_api_token(info, token_digest(token))
        log.info("API token %s created (%s)", name, info.role.value)
        return info, token

    async def list_api_tokens(self) -> builtins.list[ApiTokenInfo]:
        """The intact API tokens by name, without the tokens."""
        return [record.info for record in await self.store.list_api_tokens()]

    async def revoke_api_token(self, name: str) -> None:
        """Raises NotFoundError for an unknown name."""
        await self.store.delete_api_token(name)
        log.info("API token %s revoked", name)

    async def authenticate_api_token(self, token: Secret) -> Principal | None:
        """The principal of an intact API token, else None. Every stored digest is compared, in
        constant time."""
        presented = token_digest(token)
        found: ApiTokenRecord | None = None
        for record in await self._kept.get("api_tokens", self.store.list_api_tokens):
            if hmac.compare_digest(presented, record.digest) and found is None:
                found = record
        if found is None or not token.reveal().startswith(API_TOKEN_PREFIX):
            return None
        return Principal(found.info.name, found.info.role, "api_token")

    async def damaged(self) -> builtins.list[DamagedRecord]:
        """The damaged account and API token rows, with the reason and the fix."""
        return await self.store.damaged_accounts()

    # --- helpers --------------------------------------------------------------------------------

    async def _dummy(self) -> str:
        """A hash of a random password, made once, for names without an account."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hasher.hash(Secret(secrets.token_urlsafe(16)))
        return self._dummy_hash

    async def _rehash(self, name: str, old_hash: str, password: Secret) -> None:
        """Replace an outdated hash, unless the password changed meanwhile; best effort."""
        try:
            new_hash = await self.hasher.hash(password)
            if await self.store.set_password_hash(name, new_hash, expected=old_hash):
                log.info("password hash of web account %s renewed", name)
        except (StoreError, NotFoundError) as error:
            log.warning("password hash of web account %s not renewed: %s", name, error)
