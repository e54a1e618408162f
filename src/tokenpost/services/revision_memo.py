"""Reads of the store kept while the store's revision (`Store.revision`) is unchanged.

The revision is taken before each read, so what is kept is at least as new as the revision it is
kept under; a change by any process changes the revision and empties the memo at the next
`get`. A read that raises is not kept.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

_V = TypeVar("_V")


class RevisionMemo:
    """`read()`'s value per key, for as long as `revision()` answers the same."""

    def __init__(self, revision: Callable[[], Awaitable[int]]) -> None:
        self._revision = revision
        self._seen: int | None = None
        self._kept: dict[Hashable, Any] = {}

    async def get(self, key: Hashable, read: Callable[[], Awaitable[_V]]) -> _V:
        revision = await self._revision()
        if revision != self._seen:
            self._kept.clear()
            self._seen = revision
        if key in self._kept:
            kept: _V = self._kept[key]
            return kept
        value = await read()
        if self._seen == revision:  # no newer revision was seen while reading
            self._kept[key] = value
        return value
