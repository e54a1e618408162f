from __future__ import annotations

import base64
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenpost.adapters.crypto import (
    KEY_BYTES,
    NONCE_BYTES,
    TAG_BYTES,
    Cipher,
    load_key,
)
from tokenpost.errors import KeyFileError, StoreCorruptError

KEY = bytes(range(32))

# The GCM specification's test case 16 (AES-256, 96-bit IV, with associated data): McGrew &
# Viega, "The Galois/Counter Mode of Operation", appendix B; also NIST CAVP gcmEncryptExtIV256.
GCM_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308" * 2)
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
GCM_AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
GCM_PLAINTEXT = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
)
GCM_CIPHERTEXT = bytes.fromhex(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
)
GCM_TAG = bytes.fromhex("76fc6ece0f4e1768cddf8853bb2d551b")


def test_known_vector_layout_is_nonce_ciphertext_tag() -> None:
    cipher = Cipher(GCM_KEY, random=lambda n: GCM_IV[:n])
    blob = cipher.encrypt(GCM_PLAINTEXT, aad=GCM_AAD)
    assert blob == GCM_IV + GCM_CIPHERTEXT + GCM_TAG
    assert cipher.decrypt(blob, aad=GCM_AAD) == GCM_PLAINTEXT


@given(plaintext=st.binary(max_size=300), aad=st.binary(max_size=40))
def test_round_trip(plaintext: bytes, aad: bytes) -> None:
    cipher = Cipher(KEY)
    blob = cipher.encrypt(plaintext, aad=aad)
    assert len(blob) == NONCE_BYTES + len(plaintext) + TAG_BYTES
    assert cipher.decrypt(blob, aad=aad) == plaintext


def test_every_encryption_has_a_fresh_nonce() -> None:
    cipher = Cipher(KEY)
    blobs = {cipher.encrypt(b"same", aad=b"a")[:NONCE_BYTES] for _ in range(50)}
    assert len(blobs) == 50


@pytest.mark.parametrize(
    ("name", "mutate", "aad"),
    [
        ("other row", lambda blob: blob, b"pop:b"),
        (
            "flipped ciphertext bit",
            lambda blob: blob[:12] + bytes([blob[12] ^ 1]) + blob[13:],
            b"pop:a",
        ),
        ("flipped tag bit", lambda blob: blob[:-1] + bytes([blob[-1] ^ 0x80]), b"pop:a"),
        ("flipped nonce bit", lambda blob: bytes([blob[0] ^ 1]) + blob[1:], b"pop:a"),
        ("truncated", lambda blob: blob[:20], b"pop:a"),
        ("empty", lambda blob: b"", b"pop:a"),
    ],
)
def test_decrypt_refuses_altered_or_moved_blobs(
    name: str, mutate: Callable[[bytes], bytes], aad: bytes
) -> None:
    cipher = Cipher(KEY)
    blob = cipher.encrypt(b"refresh-token-value", aad=b"pop:a")
    with pytest.raises(StoreCorruptError) as caught:
        cipher.decrypt(mutate(blob), aad=aad)
    assert "refresh-token-value" not in str(caught.value)


def test_another_key_cannot_decrypt() -> None:
    blob = Cipher(KEY).encrypt(b"x", aad=b"smtp")
    with pytest.raises(StoreCorruptError):
        Cipher(bytes(32)).decrypt(blob, aad=b"smtp")


def test_key_check_recognises_only_its_key() -> None:
    check = Cipher(KEY).make_key_check()
    assert Cipher(KEY).matches_key_check(check)
    assert not Cipher(bytes(32)).matches_key_check(check)
    assert not Cipher(KEY).matches_key_check(b"garbage")


def test_cipher_never_shows_its_key() -> None:
    cipher = Cipher(KEY)
    assert KEY.hex() not in repr(cipher)
    assert repr(cipher) == "Cipher(***)"


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_cipher_needs_a_256_bit_key(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Cipher(bytes(length))


# --- the key file ---------------------------------------------------------------------------------


def test_create_writes_a_private_base64_key(tmp_path: Path) -> None:
    path = tmp_path / "key"
    cipher = load_key(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_bytes()
    assert len(base64.b64decode(text.strip(), validate=True)) == KEY_BYTES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]  # no temporary file left
    again = load_key(path, create=False)
    assert again.decrypt(cipher.encrypt(b"m", aad=b"a"), aad=b"a") == b"m"


def test_create_never_replaces_an_existing_key(tmp_path: Path) -> None:
    path = tmp_path / "key"
    first = load_key(path, create=True)
    before = path.read_bytes()
    second = load_key(path, create=True)
    assert path.read_bytes() == before
    assert second.matches_key_check(first.make_key_check())


def test_key_is_created_with_private_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_key(tmp_path / "key", create=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600


def test_concurrent_creators_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "key"
    ciphers: list[Cipher] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        ciphers.append(load_key(path, create=True))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check = ciphers[0].make_key_check()
    assert len(ciphers) == 8
    assert all(c.matches_key_check(check) for c in ciphers)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key"]


def test_missing_key_is_not_created_without_permission(tmp_path: Path) -> None:
    path = tmp_path / "key"
    with pytest.raises(KeyFileError, match="is missing") as caught:
        load_key(path, create=False)
    assert str(path) in str(caught.value)
    assert not path.exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_key_open_to_others_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "key"
    load_key(path, create=True)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=f"chmod 600 {path}"):
        load_key(path, create=False)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not base64!!\n",
        base64.b64encode(bytes(31)),
        base64.b64encode(bytes(33)),
        base64.b64encode(bytes(32))[:-2],
        b"A" * 5000,
    ],
)
def test_malformed_key_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="malformed"):
        load_key(path, create=True)
    assert path.read_bytes() == content


def test_key_file_may_end_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(base64.b64encode(KEY))
    path.chmod(0o600)
    blob = Cipher(KEY).encrypt(b"m", aad=b"a")
    assert load_key(path, create=False).decrypt(blob, aad=b"a") == b"m"


def test_symlinked_key_is_followed_and_its_target_checked(tmp_path: Path) -> None:
    real = tmp_path / "real"
    check = load_key(real, create=True).make_key_check()
    (tmp_path / "link").symlink_to(real)
    assert load_key(tmp_path / "link", create=False).matches_key_check(check)
    real.chmod(0o644)
    with pytest.raises(KeyFileError, match=f"chmod 600 {tmp_path / 'link'}"):
        load_key(tmp_path / "link", create=False)


def test_directory_is_not_a_key(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_key(tmp_path / "dir", create=False)


def test_key_in_a_missing_directory_cannot_be_created(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create key file"):
        load_key(tmp_path / "absent" / "key", create=True)
