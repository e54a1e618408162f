"""Every setting's status, read from the store again only when the store has changed.

The web page and the JSON API show the status of every setting at each request; reading and
authenticating the records of 200 settings takes about a hundred milliseconds. A `StatusCache`
keeps the last `status.Overview` with the store's revision (`Store.revision`) taken before it
was read, so what it keeps is at least as new as that revision, and reads again when the
revision differs. Changes made by other processes (the CLI, other instances) count too.

What a status shows that changes without a write, a pending authorization that has ended, is
judged at every `snapshot` (`Overview.at`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from dataclasses import dataclass

from tokenpost.ports import FlowOwners, Store
from tokenpost.services.status import Overview, SettingStatus, read_overview
from tokenpost.settings.model import MailSetting


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every setting's status at one moment. Two snapshots with equal `key`s have equal `rows`
    and `settings`: callers may keep what they derive from one under its key."""

    key: Hashable
    rows: list[SettingStatus]
    settings: list[MailSetting]


class StatusCache:
    """`status.status_and_settings` for a long-running process (one per store)."""

    def __init__(self, store: Store, owners: FlowOwners) -> None:
        self._store = store
        self._owners = owners
        self._kept: tuple[int, int, Overview] | None = None  # revision, read number, overview
        self._reads = 0
        self._reading = asyncio.Lock()  # requests arriving together read the store once

    async def snapshot(self, now: float) -> Snapshot:
        """Every setting's status at `now`."""
        number, overview = await self._current()
        rows = overview.at(now, self._owners)
        judged = tuple(rows[index] for index in overview.waiting)
        return Snapshot((number, judged), rows, overview.settings)

    async def overview(self) -> Overview:
        """The `status.Overview` of the store as it is now (read again only after a change)."""
        return (await self._current())[1]

    async def _current(self) -> tuple[int, Overview]:
        revision = await self._store.revision()
        kept = self._kept_at(revision)
        if kept is None:
            async with self._reading:
                kept = self._kept_at(revision)
                if kept is None:
                    self._reads += 1
                    kept = (revision, self._reads, await read_overview(self._store))
                    self._kept = kept
        _, number, overview = kept
        return number, overview

    def _kept_at(self, revision: int) -> tuple[int, int, Overview] | None:
        if self._kept is None or self._kept[0] != revision:
            return None
        return self._kept
