"""Encryption at rest: AES-256-GCM (NIST SP 800-38D) with one key per install (DESIGN invariant 2).

A blob is ``nonce (12 random bytes) || ciphertext || tag (16 bytes)``. The associated data names
the row a blob belongs to (a setting id, ``provider:NAME``…), so a blob copied to another row does
not decrypt. The key file holds 32 random bytes as base64 text, mode 0600.

A store keeps a *key check* (a known plaintext encrypted with the key) so that a wrong key is
detected when the store is opened, before anything is written with it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenpost.errors import KeyFileError, StoreCorruptError

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
KEY_CHECK_PLAINTEXT: Final = b"tokenpost-key-check"
KEY_CHECK_AAD: Final = b"key-check"
_KEY_FILE_MODE: Final = 0o600
_MAX_KEY_FILE_BYTES: Final = 1024


class Cipher:
    """AES-GCM with the install's key. Never prints the key."""

    __slots__ = ("_aead", "_random")

    def __init__(self, key: bytes, *, random: Callable[[int], bytes] = secrets.token_bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("an AES-256-GCM key is 32 bytes")
        self._aead = AESGCM(key)
        self._random = random

    def __repr__(self) -> str:
        return "Cipher(***)"

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """``nonce || ciphertext || tag``; a fresh random nonce for every call."""
        nonce = self._random(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, *, aad: bytes) -> bytes:
        """The plaintext of a blob made by `encrypt` with the same key and `aad`.

        Raises:
            StoreCorruptError: the blob is truncated, altered, belongs to another row (other
                `aad`) or was written with another key.
        """
        if len(blob) < NONCE_BYTES + TAG_BYTES:
            raise StoreCorruptError("an encrypted value in the store is truncated")
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise StoreCorruptError(
                "an encrypted value in the store does not authenticate: it was altered, moved"
                " from another row, or written with another key"
            ) from None

    def make_key_check(self) -> bytes:
        """The blob a store keeps to recognise its key later."""
        return self.encrypt(KEY_CHECK_PLAINTEXT, aad=KEY_CHECK_AAD)

    def matches_key_check(self, blob: bytes) -> bool:
        """True when `blob` was made by `make_key_check` with this key."""
        try:
            return self.decrypt(blob, aad=KEY_CHECK_AAD) == KEY_CHECK_PLAINTEXT
        except StoreCorruptError:
            return False


def load_key(
    path: Path, *, create: bool, random: Callable[[int], bytes] = secrets.token_bytes
) -> Cipher:
    """Read the key file, or create it when `create` is true and it does not exist.

    Raises:
        KeyFileError: the file is missing (and `create` is false), unreadable, open to group or
            others, or does not hold 32 bytes of base64.
    """
    if create:
        with contextlib.suppress(FileExistsError):
            _create_key_file(path, random(KEY_BYTES))
    return Cipher(_read_key_file(path), random=random)


def _read_key_file(path: Path) -> bytes:
    try:
        # Symlinks are followed (secret mounts use them); the mode checked is the target's.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} is missing; the store was written with another key, which is needed"
            f" to read it: restore that key file (or set TOKENPOST_KEY_FILE to it)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"key file {path} is not a regular file")
        if info.st_mode & 0o077:
            mode = stat.S_IMODE(info.st_mode)
            raise KeyFileError(
                f"key file {path} is readable by other users (mode {mode:04o});"
                f" fix it with: chmod 600 {path}"
            )
        text = os.read(fd, _MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    return _parse_key(text, path)


def _parse_key(text: bytes, path: Path) -> bytes:
    malformed = KeyFileError(
        f"key file {path} is malformed: it must hold {KEY_BYTES} bytes as base64 text"
    )
    if len(text) > _MAX_KEY_FILE_BYTES:
        raise malformed
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise malformed from None
    if len(key) != KEY_BYTES:
        raise malformed
    return key


def _create_key_file(path: Path, key: bytes) -> None:
    """Write a new key file atomically: a private temporary file, fsync, then link(2).

    link(2) fails if `path` exists, so a key is never overwritten, and a crash leaves either no
    key file or a complete one.

    Raises:
        FileExistsError: `path` already exists (another process may have just created it).
        KeyFileError: the file cannot be written.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(temporary, flags, _KEY_FILE_MODE)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(base64.b64encode(key) + b"\n")
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        _fsync_dir(path.parent)
    except FileExistsError:
        raise
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
