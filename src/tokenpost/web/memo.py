"""What a page derives from the status of every setting, kept under the key it was made from.

The keys come from `status_cache.Snapshot.key` plus what else the value depends on (language,
role, the minute a countdown shows). Keys go out of use all together when the store changes, so
a memo that grows past its limit is emptied rather than sorted by age.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

_V = TypeVar("_V")


class Memo(Generic[_V]):
    """`make()`'s value per key, at most `limit` of them."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: dict[Hashable, _V] = {}

    def get(self, key: Hashable, make: Callable[[], _V]) -> _V:
        try:
            return self._kept[key]
        except KeyError:
            pass
        value = make()
        if len(self._kept) >= self._limit:
            self._kept.clear()
        self._kept[key] = value
        return value

    def __len__(self) -> int:
        return len(self._kept)
