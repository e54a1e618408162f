"""`account_ports.PasswordHasher` over argon2-cffi: argon2id with the library's parameters
(RFC 9106's second recommended option: 64 MiB, 3 passes, 4 lanes), or stronger ones given.

Hashing and verifying take about a fifth of a second of CPU and 64 MiB each: both run in a
worker thread (`asyncio.to_thread`), so the event loop (the scheduler, the web page) keeps going.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from tokenpost.secret import Secret

if TYPE_CHECKING:
    from tokenpost.account_ports import PasswordHasher


class Argon2Hasher:
    """argon2id hashes as PHC strings (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``)."""

    def __init__(self, parameters: argon2.Parameters | None = None) -> None:
        if parameters is None:
            self._hasher = argon2.PasswordHasher()  # argon2id, RFC 9106 low-memory defaults
        else:
            if parameters.type is not argon2.Type.ID:
                raise ValueError("tokenpost hashes passwords with argon2id only")
            self._hasher = argon2.PasswordHasher.from_parameters(parameters)

    def __repr__(self) -> str:
        h = self._hasher
        return f"Argon2Hasher(m={h.memory_cost}, t={h.time_cost}, p={h.parallelism})"

    async def hash(self, password: Secret) -> str:
        return await asyncio.to_thread(self._hasher.hash, password.reveal())

    async def verify(self, password_hash: str, password: Secret) -> bool:
        return await asyncio.to_thread(self._verify, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash's parameters are not the hasher's (a hash that cannot be read
        too: it is replaced by a good one at the next sign-in)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def _verify(self, password_hash: str, password: Secret) -> bool:
        try:
            return self._hasher.verify(password_hash, password.reveal())
        except (VerificationError, InvalidHashError):
            return False  # VerifyMismatchError is a VerificationError


if TYPE_CHECKING:

    def _implements_hasher(hasher: Argon2Hasher) -> PasswordHasher:  # checked by mypy
        return hasher
