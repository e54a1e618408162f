"""One refresh or authorization in flight per token (DESIGN invariant 1), across coroutines and
processes sharing a home.

`hold(key)` takes two locks, in this order: an `asyncio.Lock` per key, so coroutines of one
process queue without touching the file system, then an exclusive ``flock(2)`` on
``lock_dir/<key>.lock``, so processes exclude each other. flock locks belong to an open file
description, so two `FileFlightLock`s in one process exclude each other too, and the kernel drops
the lock when its holder dies. The flock is polled with ``LOCK_NB`` and short sleeps: the event
loop never blocks, and cancelling a waiter leaves nothing behind. Lock files are never deleted
(unlinking a lock file another process has open would let two holders in).

With PostgreSQL shared by several hosts this is per host only; the store's compare-and-set on
the token version is what keeps writes from different hosts apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from tokenpost.errors import StoreError

if TYPE_CHECKING:
    from tokenpost.ports import FlightLock

_MIN_POLL_S: Final = 0.005
_MAX_POLL_S: Final = 0.1
_MAX_NAME: Final = 200  # below NAME_MAX (255) with room for the suffix


def lock_file_name(key: str) -> str:
    """A file name for `key`: percent-encoded (``pop:fax`` → ``pop%3Afax.lock``), or a hash when
    the encoding would be too long. Distinct keys get distinct names: a hashed name starts with
    ``%s``, which percent-encoding never produces."""
    if not key:
        raise ValueError("a flight lock key is not empty")
    encoded = quote(key, safe="")
    if len(encoded) > _MAX_NAME:
        encoded = "%sha256-" + hashlib.sha256(key.encode()).hexdigest()
    return encoded + ".lock"


class FileFlightLock:
    """`ports.FlightLock` with flock(2) files in `lock_dir` (created 0700 when missing)."""

    def __init__(self, lock_dir: Path) -> None:
        self._lock_dir = lock_dir
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold the lock for `key` until the block exits, normally, by error or by cancellation.

        Raises:
            StoreError: the lock file cannot be opened.
        """
        path = self._lock_dir / lock_file_name(key)
        async with self._locks.setdefault(key, asyncio.Lock()):
            fd = self._open(path)
            try:
                await _flock_exclusive(fd)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _open(self, path: Path) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                return os.open(path, flags, 0o600)
            except FileNotFoundError:
                self._lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                return os.open(path, flags, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot open the lock file {path}: {exc.strerror}") from exc


async def _flock_exclusive(fd: int) -> None:
    """Take an exclusive flock on `fd`, sleeping between tries (5 ms doubling to 100 ms)."""
    delay = _MIN_POLL_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_POLL_S)
        else:
            return


if TYPE_CHECKING:

    def _implements_flight_lock(lock: FileFlightLock) -> FlightLock:  # checked by mypy
        return lock
