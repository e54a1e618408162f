"""Work on many settings at once, within bounds: in all, and per shared peer.

The scheduler refreshes due tokens and the receiver checks due POP settings this way. A peer
(a provider's token endpoint, a POP server) that is slow or dead holds at most `per_peer` of
the slots: the other peers' settings go on. Once `stop` is set nothing more starts; work
already started finishes (the caller's grace bounds it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

_T = TypeVar("_T")
_R = TypeVar("_R")


async def run_bounded(
    items: Iterable[_T],
    work: Callable[[_T], Awaitable[_R]],
    *,
    peer: Callable[[_T], str],
    concurrency: int,
    per_peer: int,
    stop: asyncio.Event | None = None,
) -> list[_R | None]:
    """`work(item)` for every item, at most `concurrency` at once and at most `per_peer` of
    one `peer(item)`; results in the items' order, None for an item not started (stopped)."""
    overall = asyncio.Semaphore(concurrency)
    by_peer: dict[str, asyncio.Semaphore] = {}

    async def one(item: _T) -> _R | None:
        own = by_peer.setdefault(peer(item), asyncio.Semaphore(per_peer))
        async with own, overall:
            if stop is not None and stop.is_set():
                return None
            return await work(item)

    return list(await asyncio.gather(*(one(item) for item in items)))
