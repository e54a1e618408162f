"""One refresh or authorization in flight per token (DESIGN invariant 1), across coroutines and
processes sharing a home.

`hold(key)` takes two locks, in this order: an `asyncio.Lock` per key, so coroutines of one
process queue without touching the file system, then an exclusive ``flock(2)`` on
``lock_dir/<key>.lock``, so processes exclude each other. flock locks belong to an open file
description, so two `FileFlightLock`s in one process exclude each other too, and the kernel drops
the lock when its holder dies. The flock is polled with ``LOCK_NB`` and short sleeps: the event
loop never blocks, and cancelling a waiter leaves nothing behind. Lock files are never deleted
(unlinking a lock file another process has open would let two holders in).

Every wait is bounded (`lock_timeout_s`, or the `timeout` of one `hold`), the queue of this
process's coroutines included: past it, FlightLockBusyError says that another process holds
the token. Holds are short (one exchange with a provider) except one: a process keeps the lock
while it holds a grant the store refused to take (`services.holdings`), so that nobody refreshes
with the refresh token the grant replaced.

With PostgreSQL shared by several hosts this is per host only; the store's compare-and-set on
the token version is what keeps writes from different hosts apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from tokenpost.errors import FlightLockBusyError, StoreError

if TYPE_CHECKING:
    from tokenpost.ports import FlightLock

LOCK_TIMEOUT_S: Final = 60.0
"""The longest `hold` waits by default: more than one slow exchange with a provider (30 s)."""

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

    def __init__(self, lock_dir: Path, *, lock_timeout_s: float = LOCK_TIMEOUT_S) -> None:
        if not lock_timeout_s >= 0:
            raise ValueError("lock_timeout_s must not be negative")
        self._lock_dir = lock_dir
        self._timeout_s = lock_timeout_s
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(
        self,
        key: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncIterator[None]:
        """Hold the lock for `key` until the block exits, normally, by error or by cancellation.

        Args:
            timeout: the longest wait in seconds, this process's queue included (0: only if
                the lock is free now); None is the lock's `lock_timeout_s`.

        Raises:
            FlightLockBusyError: the lock was not free within the wait.
            StoreError: the lock file cannot be opened.
        """
        path = self._lock_dir / lock_file_name(key)
        limit = self._timeout_s if timeout is None else max(0.0, timeout)
        deadline = asyncio.get_running_loop().time() + limit
        local = self._locks.setdefault(key, asyncio.Lock())
        await _acquire(local, deadline, lambda: busy_error(key, limit))
        try:
            fd = self._open(path)
            try:
                await _flock_exclusive(fd, deadline, lambda: busy_error(key, limit))
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        finally:
            local.release()

    def _open(self, path: Path) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                return os.open(path, flags, 0o600)
            except FileNotFoundError:
                self._lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                return os.open(path, flags, 0o600)
        except OSError as exc:
            raise StoreError(
                "cannot open the lock file {path}: {reason}", path=str(path), reason=exc.strerror
            ) from exc


def busy_error(key: str, waited: float) -> FlightLockBusyError:
    """What a caller who waited `waited` seconds for the lock of `key` is told."""
    return FlightLockBusyError(
        "another tokenpost process kept the token of {setting} locked for {seconds} s, perhaps"
        " because it cannot write the store and holds a new token until it can: if the store"
        " is full or read-only, make it writable (that process then saves the token and lets"
        " go); otherwise try again later",
        setting=key,
        seconds=format(waited, "g"),
    )


async def _acquire(
    lock: asyncio.Lock, deadline: float, busy: Callable[[], FlightLockBusyError]
) -> None:
    """Take this process's lock for the key by `deadline` (event-loop time)."""
    if not lock.locked():
        await lock.acquire()  # free and nobody queued: taken without suspending
        return
    if asyncio.get_running_loop().time() >= deadline:
        raise busy()
    try:
        async with asyncio.timeout_at(deadline):
            await lock.acquire()
    except TimeoutError:
        raise busy() from None


async def _flock_exclusive(
    fd: int, deadline: float, busy: Callable[[], FlightLockBusyError]
) -> None:
    """Take an exclusive flock on `fd` by `deadline`, sleeping between tries (5 ms doubling to
    100 ms)."""
    loop = asyncio.get_running_loop()
    delay = _MIN_POLL_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise busy() from None
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 2, _MAX_POLL_S)
        else:
            return


if TYPE_CHECKING:

    def _implements_flight_lock(lock: FileFlightLock) -> FlightLock:  # checked by mypy
        return lock
