"""Encryption at rest: AES-256-GCM (NIST SP 800-38D) with one key per install (DESIGN invariant 2).

A blob is ``nonce (12 random bytes) || ciphertext || tag (16 bytes)``. The associated data names
the row a blob belongs to (a setting id, ``provider:NAME``…), so a blob copied to another row does
not decrypt. The key file holds 32 random bytes as base64 text, mode 0600.

A store keeps a *key check* (a known plaintext encrypted with the key) so that a wrong key is
detected when the store is opened, before anything is written with it.

Randomness is `os.urandom` (what `secrets.token_bytes` calls): importing `secrets` would import
`random`, which `token status` does not otherwise need at start-up.

The same key also authenticates whole rows (`store_mac`): HMAC-SHA256 with a key derived from it,
HMAC(key, "tokenpost row mac v1"), so the row MACs and the AES-GCM blobs never share a key. The
standard library's `hmac` computes them: `token status` starts without more imports.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
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
MAC_BYTES: Final = 32
_MAC_KEY_LABEL: Final = b"tokenpost row mac v1"
_KEY_FILE_MODE: Final = 0o600
_MAX_KEY_FILE_BYTES: Final = 1024


class Cipher:
    """AES-GCM with the install's key. Never prints the key."""

    __slots__ = ("_aead", "_mac_keyed", "_random")

    def __init__(self, key: bytes, *, random: Callable[[int], bytes] = os.urandom) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("an AES-256-GCM key is 32 bytes")
        self._aead = AESGCM(key)
        # HMAC keyed once: each row MAC copies it instead of keying anew (a status of ten
        # thousand settings checks twenty thousand rows).
        self._mac_keyed = hmac.new(hmac.digest(key, _MAC_KEY_LABEL, "sha256"), digestmod="sha256")
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

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of `message` with the key derived for row MACs (`MAC_BYTES` long)."""
        mac = self._mac_keyed.copy()
        mac.update(message)
        return mac.digest()

    def mac_matches(self, message: bytes, tag: object) -> bool:
        """True when `tag` is `mac(message)`; compared in constant time. Any other kind of
        `tag` (None, text: a column changed behind tokenpost's back) does not match."""
        if not isinstance(tag, bytes | bytearray | memoryview):
            return False
        return hmac.compare_digest(self.mac(message), bytes(tag))

    def make_key_check(self) -> bytes:
        """The blob a store keeps to recognise its key later."""
        return self.encrypt(KEY_CHECK_PLAINTEXT, aad=KEY_CHECK_AAD)

    def matches_key_check(self, blob: bytes) -> bool:
        """True when `blob` was made by `make_key_check` with this key."""
        try:
            return self.decrypt(blob, aad=KEY_CHECK_AAD) == KEY_CHECK_PLAINTEXT
        except StoreCorruptError:
            return False


def load_key(path: Path, *, create: bool, random: Callable[[int], bytes] = os.urandom) -> Cipher:
    """Read the key file, or create it when `create` is true and it does not exist.

    Raises:
        KeyFileError: the file is missing (and `create` is false), unreadable, open to group or
            others, or does not hold 32 bytes of base64.
    """
    if create:
        with contextlib.suppress(FileExistsError):
            _create_key_file(path, random(KEY_BYTES))
    return Cipher(_read_key_file(path), random=random)


def create_key(path: Path, *, random: Callable[[int], bytes] = os.urandom) -> Cipher:
    """Create a new key file (never overwriting one) and return its cipher.

    Raises:
        FileExistsError: a key file is already there; it is left as it is.
        KeyFileError: the file cannot be written.
    """
    _create_key_file(path, random(KEY_BYTES))
    return Cipher(_read_key_file(path), random=random)


def _read_key_file(path: Path) -> bytes:
    try:
        # Symlinks are followed (secret mounts use them); the mode checked is the target's.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileError(
            "key file {path} is missing; the store was written with another key, which is needed"
            " to read it: restore that key file (or set TOKENPOST_KEY_FILE to it)",
            path=str(path),
        ) from None
    except OSError as exc:
        raise KeyFileError(
            "cannot open key file {path}: {reason}", path=str(path), reason=_os_reason(exc)
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError("key file {path} is not a regular file", path=str(path))
        if info.st_mode & 0o077:
            mode = format(stat.S_IMODE(info.st_mode), "04o")
            raise KeyFileError(
                "key file {path} is readable by other users (mode {mode});"
                " fix it with: chmod 600 {path}",
                path=str(path),
                mode=mode,
            )
        text = os.read(fd, _MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    return _parse_key(text, path)


def _parse_key(text: bytes, path: Path) -> bytes:
    malformed = KeyFileError(
        "key file {path} is malformed: it must hold {count} bytes as base64 text",
        path=str(path),
        count=KEY_BYTES,
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
    temporary = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
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
        raise KeyFileError(
            "cannot create key file {path}: {reason}", path=str(path), reason=_os_reason(exc)
        ) from exc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_reason(error: OSError) -> str:
    """The operating system's words for `error` ("Permission denied"), shown as they are."""
    return error.strerror or str(error)
