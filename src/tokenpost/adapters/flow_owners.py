"""Who waits for a pending authorization: an ownership lock per process (`ports.FlowOwners`).

A process that starts a flow (`token get`, `setup`) creates a file of its own in the home's lock
directory, ``flow-<id>.lock`` with a random id, and keeps an exclusive flock(2) on it until it
exits. The kernel drops the lock when the process dies, however it dies (SIGKILL included), and a
random id is never reused, so there is no pid-reuse problem. Another process on the same host
checks an owner by trying a shared flock on that file: granted, or no file, means the owner is
gone; refused means it still runs. An owner recorded by another host (a shared PostgreSQL store)
cannot be checked from here and is never reported gone: its flow is judged by its expiry.

Checking never writes the store; it may remove the file of an owner found gone (nobody can own
that id again).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from tokenpost.ports import FlowOwners

# `token status` imports this module on every start: no logging, no re (start-up time).
_PREFIX: Final = "flow-"
_ID_LENGTH: Final = 32
_HEX: Final = frozenset("0123456789abcdef")


class FileFlowOwners:
    """`ports.FlowOwners` with flock(2) files in `lock_dir` (the home's lock directory)."""

    def __init__(self, lock_dir: Path, *, host: str | None = None) -> None:
        self._lock_dir = lock_dir
        self._host = host if host is not None else os.uname().nodename
        self._id: str | None = None
        self._fd: int | None = None

    def claim(self) -> tuple[str, str] | None:
        """This process as owner: (host, id). None when the ownership file cannot be made (the
        flow is then judged by its expiry alone)."""
        if self._id is None:
            import secrets  # only a process that starts a flow needs it (`token status` not)

            owner_id = secrets.token_hex(16)
            path = self._path(owner_id)
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                fd = os.open(path, flags, 0o600)
            except OSError:
                return None
            # A new file nobody else knows of yet: the lock is granted at once. The id is
            # published (in the token state) only after this, so no one can probe it earlier.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._id, self._fd = owner_id, fd
        return self._host, self._id

    def is_gone(self, host: str, owner_id: str) -> bool:
        """True when `owner_id` was an owner on this host and no longer runs."""
        if host != self._host or not _is_owner_id(owner_id) or owner_id == self._id:
            return False
        path = self._path(owner_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        except OSError:
            return False  # cannot be checked: never reported gone
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            with contextlib.suppress(OSError):
                path.unlink()
            return True
        finally:
            os.close(fd)

    def close(self) -> None:
        """Stop owning (the process is done with its flows): remove the file, drop the lock."""
        if self._fd is None or self._id is None:
            return
        with contextlib.suppress(OSError):
            self._path(self._id).unlink()
        os.close(self._fd)
        self._id = self._fd = None

    def _path(self, owner_id: str) -> Path:
        return self._lock_dir / f"{_PREFIX}{owner_id}.lock"


def _is_owner_id(text: str) -> bool:
    """An id `claim` makes: 32 lower-case hex digits (never a path)."""
    return len(text) == _ID_LENGTH and _HEX.issuperset(text)


if TYPE_CHECKING:

    def _implements_flow_owners(owners: FileFlowOwners) -> FlowOwners:  # checked by mypy
        return owners
