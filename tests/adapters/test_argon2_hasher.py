"""The argon2id password hasher over argon2-cffi, at its real (default) parameters."""

from __future__ import annotations

import asyncio

import argon2
import pytest

from tokenpost.adapters.argon2_hasher import Argon2Hasher
from tokenpost.secret import Secret

PASSWORD = Secret("correct horse battery")


async def test_hashes_are_argon2id_with_the_library_defaults_and_salted() -> None:
    hasher = Argon2Hasher()
    first, second = await hasher.hash(PASSWORD), await hasher.hash(PASSWORD)
    assert first.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert first != second
    assert PASSWORD.reveal() not in first
    assert await hasher.verify(first, PASSWORD)
    assert not await hasher.verify(first, Secret("correct horse batterY"))
    assert not hasher.needs_rehash(first)
    assert "correct" not in repr(hasher)


async def test_a_hash_that_cannot_be_read_verifies_nothing() -> None:
    hasher = Argon2Hasher(argon2.profiles.CHEAPEST)
    assert not await hasher.verify("not a hash", PASSWORD)
    assert not await hasher.verify("$argon2id$v=19$m=8,t=1,p=1$broken", PASSWORD)
    assert hasher.needs_rehash("not a hash")


async def test_weaker_parameters_need_a_rehash() -> None:
    weak = await Argon2Hasher(argon2.profiles.CHEAPEST).hash(PASSWORD)
    assert Argon2Hasher().needs_rehash(weak)
    assert await Argon2Hasher().verify(weak, PASSWORD)  # still verifies until renewed


def test_only_argon2id_is_accepted() -> None:
    with pytest.raises(ValueError, match="argon2id"):
        Argon2Hasher(argon2.Parameters(argon2.Type.I, 19, 16, 32, 3, 65536, 4))


async def test_hashing_leaves_the_event_loop_free() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await Argon2Hasher().hash(PASSWORD)  # about a fifth of a second of CPU
    ticker.cancel()
    assert ticks >= 3
