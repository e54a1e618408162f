"""Whose session is still good: a stamp of an account's credentials, taken at login and compared
on every request.

The stamp is a digest of the account's stored role, creation time and password hash, so a
session ends when its account is removed (or removed and added again), gets another role, or
gets another password — whichever process changed it (`tokenpost admin passwd` runs in
another). The digest stays in this process's memory; the hash itself is never kept.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from tokenpost.errors import DamagedRecordError

if TYPE_CHECKING:
    from tokenpost.wiring import App


async def credential_stamp(app: App, name: str) -> str | None:
    """The stamp of account `name`, or None when it is gone or damaged."""
    try:
        record = await app.accounts.record(name)
    except DamagedRecordError:
        return None
    if record is None:
        return None
    account = record.account
    material = "\0".join(
        (account.name, account.role.value, repr(account.created_at), record.password_hash)
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()
