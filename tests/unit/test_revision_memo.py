"""`RevisionMemo`: a read is kept exactly while the revision stays what it was before the read."""

from __future__ import annotations

import pytest

from tokenpost.services.revision_memo import RevisionMemo


class Reads:
    """A store stand-in: its revision, and each value read with the revision it was read at."""

    def __init__(self) -> None:
        self.now = 1
        self.count = 0

    async def revision(self) -> int:
        return self.now

    async def read(self) -> tuple[int, int]:
        self.count += 1
        return self.now, self.count


async def test_kept_while_the_revision_is_unchanged() -> None:
    store = Reads()
    memo = RevisionMemo(store.revision)
    first = await memo.get("k", store.read)
    assert await memo.get("k", store.read) == first
    assert store.count == 1
    assert await memo.get("other", store.read) != first  # each key its own read
    store.now = 2
    assert await memo.get("k", store.read) == (2, 3)
    assert await memo.get("k", store.read) == (2, 3)


async def test_a_read_during_which_the_revision_changed_is_read_again() -> None:
    store = Reads()
    memo = RevisionMemo(store.revision)

    async def changing() -> tuple[int, int]:
        value = await store.read()
        store.now += 1  # a write committed while this read ran ...
        await memo.get("seen", store.read)  # ... and another request saw its revision
        return value

    await memo.get("k", changing)
    assert await memo.get("k", store.read) == (2, 3)  # not the value read before the change


async def test_a_failed_read_is_not_kept() -> None:
    store = Reads()
    memo = RevisionMemo(store.revision)

    async def failing() -> tuple[int, int]:
        raise LookupError("damaged")

    with pytest.raises(LookupError):
        await memo.get("k", failing)
    assert await memo.get("k", store.read) == (1, 1)
