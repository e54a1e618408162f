"""Token states the store would not take, held in memory until it does (DESIGN invariant 6).

Theory of operation. A refresh that got a grant must not lose it: under rotation the provider has
already invalidated the refresh token in the store, and presenting that one again is a replay
that revokes the whole grant (RFC 9700 §4.14). So when the store refuses to write a new state
(disk full, read-only, unreachable), the refresher hands it here instead of dropping it:

- The held state is the setting's token for every caller of this process, ahead of the stored
  record; a refresh of it uses its own refresh token, and its successor is held (or written) in
  turn.
- The process keeps holding the setting's flight lock until the state is written: no other
  process sharing the home can refresh with the refresh token the held grant replaced. (Their
  bounded wait ends in FlightLockBusyError, which says why.)
- A writer task per held setting retries the write with back-off (5 s doubling to 5 min),
  compare-and-set against the version the held state was based on. Writing never asks the
  provider for anything. Once written, the hold ends and the lock is released.
- `store_unwritable` is reported once per episode (from the first refused write to the write
  that succeeds), through the event hook and one WARNING line.
- `close` (a one-shot command ending, `serve` stopping) tries to write for a few seconds more and
  says loudly what could not be saved, and how to fix it.

Every change of a held entry happens under the setting's turn (`turn`), the same in-process lock
the refresher takes before refreshing, so a write never races a refresh of the same token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from tokenpost.errors import ConflictError, StoreError
from tokenpost.ports import TokenRecord, TokenStore
from tokenpost.tokens.state import TokenState

if TYPE_CHECKING:
    from tokenpost.services.targets import Target

log = logging.getLogger("tokenpost.refresh")

STORE_RETRY_FIRST: Final = 5.0
"""Seconds before the first retry of a refused write; the wait doubles after each refusal."""

STORE_RETRY_CAP: Final = 300.0
"""The longest wait between two retries of a refused write (5 minutes)."""

EXIT_GRACE: Final = 10.0
"""How long `close` keeps trying to write what is held before giving up and saying so."""

_EXIT_FIRST_RETRY: Final = 1.0

Notify = Callable[[str, str, object], None]  # the services' EventHook


@dataclass
class Held:
    """One setting's state that the store has not taken yet.

    `base` is the stored record `state` replaces (its version is the compare-and-set base);
    `lock` keeps the setting's flight lock until the hold ends; `error` is the last refusal.
    """

    target: Target
    base: TokenRecord
    state: TokenState
    error: StoreError
    lock: contextlib.AsyncExitStack
    writer: asyncio.Task[None] | None = None

    @property
    def setting_id(self) -> str:
        return self.target.setting_id


class Holdings:
    """The held states of one process, keyed by setting id."""

    def __init__(
        self,
        store: TokenStore,
        notify: Notify,
        *,
        retry_first: float = STORE_RETRY_FIRST,
        retry_cap: float = STORE_RETRY_CAP,
    ) -> None:
        self._store = store
        self._notify = notify
        self._retry_first = retry_first
        self._retry_cap = retry_cap
        self._held: dict[str, Held] = {}
        self._turns: dict[str, asyncio.Lock] = {}

    def turn(self, setting_id: str) -> asyncio.Lock:
        """The in-process lock every refresh and write of the setting's token is done under."""
        return self._turns.setdefault(setting_id, asyncio.Lock())

    def get(self, setting_id: str) -> Held | None:
        return self._held.get(setting_id)

    def held_ids(self) -> list[str]:
        return sorted(self._held)

    def hold(
        self,
        target: Target,
        base: TokenRecord,
        state: TokenState,
        lock: contextlib.AsyncExitStack,
        error: StoreError,
    ) -> None:
        """Start holding `state` (the store just refused it); the caller has the turn and hands
        over `lock`, which holds the setting's flight lock."""
        held = Held(target, base, state, error, lock)
        self._held[held.setting_id] = held
        # Its one log line is the event's (services.events); writes are retried with back-off.
        self._notify("store_unwritable", held.setting_id, error)
        held.writer = asyncio.create_task(
            self._retry(held.setting_id), name=f"tokenpost: write {held.setting_id}"
        )

    async def update(self, held: Held, state: TokenState) -> None:
        """`state` succeeds the held one (a refresh of it); write it now if the store takes it.
        The caller has the turn."""
        held.state = state
        await self._write(held)

    async def write_all(self) -> None:
        """One write attempt for every held state, now (never a request to a provider)."""
        for setting_id in self.held_ids():
            async with self.turn(setting_id):
                held = self._held.get(setting_id)
                if held is not None:
                    await self._write(held)

    async def close(self, grace: float = EXIT_GRACE) -> list[str]:
        """Try to write what is held for up to `grace` seconds, then let go of every hold.

        Returns the settings whose state could not be saved; each is reported as an ERROR line
        naming the fix.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        delay = _EXIT_FIRST_RETRY
        await self.write_all()
        while self._held and loop.time() + delay <= deadline:
            await asyncio.sleep(delay)
            await self.write_all()
            delay *= 2
        unsaved = self.held_ids()
        for setting_id in unsaved:
            held = self._held[setting_id]
            log.error(
                "the new token of %s could not be saved: %s. Free space in the home or make the"
                " store writable; the token in the store is outdated and may have to be obtained"
                " again ('tokenpost token get %s')",
                setting_id,
                held.error,
                setting_id,
            )
            await self._release(held)
        return unsaved

    async def _write(self, held: Held) -> bool:
        """Write the held state (compare-and-set on its base); True when the hold ended."""
        try:
            await self._store.save_token(
                held.setting_id,
                held.state,
                binding=held.target.binding,
                expected_version=held.base.version,
            )
        except ConflictError as error:
            # Only a writer without the flight lock could have changed it (a setting removed
            # with its token): what it wrote was decided after ours, so ours is dropped.
            log.warning(
                "the token of %s changed in the store while a newer one was held; the held one"
                " is dropped: %s",
                held.setting_id,
                error,
            )
        except StoreError as error:
            held.error = error
            log.debug("the store still refuses the token of %s: %s", held.setting_id, error)
            return False
        else:
            log.info("the token of %s is saved; it is no longer held in memory", held.setting_id)
        await self._release(held)
        return True

    async def _release(self, held: Held) -> None:
        if self._held.get(held.setting_id) is held:
            del self._held[held.setting_id]
        writer, held.writer = held.writer, None
        if writer is not None and writer is not asyncio.current_task():
            writer.cancel()
        await held.lock.aclose()

    async def _retry(self, setting_id: str) -> None:
        """The writer task: retry with back-off until the write succeeds or the hold ends."""
        delay = self._retry_first
        while True:
            await asyncio.sleep(delay)
            async with self.turn(setting_id):
                held = self._held.get(setting_id)
                if held is None:
                    return
                try:
                    if await self._write(held):
                        return
                except Exception:
                    # Not a refusal the store reports (those are StoreError): keep the token
                    # and keep trying; the traceback is for whoever investigates.
                    log.exception("writing the held token of %s failed", setting_id)
            delay = min(delay * 2, self._retry_cap)
