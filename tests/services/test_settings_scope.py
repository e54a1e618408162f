"""A settings change touches only what it changes (issue 10, item 1): adding or changing a POP
setting reads, locks and reconciles that setting alone, the SMTP setting likewise, and a provider
change only the settings that use it; so the store calls of a change do not grow with the number
of settings. Over a real SQLite store; the lock is our own port, counting what it is asked for.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from service_world import provider, smtp_setting

from store_support import CountingStore
from tokenpost.adapters.home import open_home
from tokenpost.adapters.sql_store import SqlStore, open_store
from tokenpost.ports import FlightLock, Store
from tokenpost.secret import Secret
from tokenpost.services.settings import SettingsService
from tokenpost.services.targets import load_target
from tokenpost.settings.model import AuthMethod, PopSetting, Security
from tokenpost.tokens.state import Acquired, NotAcquired


class CountingLock:
    """FlightLock: every key held, counted (one process: no one else waits)."""

    def __init__(self) -> None:
        self.held: Counter[str] = Counter()

    @asynccontextmanager
    async def hold(self, key: str, *, timeout: float | None = None) -> AsyncIterator[None]:
        self.held[key] += 1
        yield


def pop(name: str, **changes: Any) -> PopSetting:
    base = PopSetting(
        name, "pop.example", 995, Security.TLS, 300, AuthMethod.OAUTH2, f"/var/spool/{name}",
        provider="as", account=f"{name}@example.com",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


@asynccontextmanager
async def two_providers(home: Path) -> AsyncIterator[SqlStore]:
    """A new store with the providers `as` and `other` and the SMTP setting."""
    async with await open_store(open_home(home, {})) as opened:
        await opened.put_provider(provider())
        await opened.put_provider(provider(name="other", client_id="client-2"))
        await opened.put_smtp(smtp_setting())
        yield opened


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with two_providers(tmp_path / "home") as opened:
        yield opened


async def change_counts(store: SqlStore, count: int, change: str) -> tuple[Counter[str], ...]:
    """The store calls and lock holds of one `change`, with `count` POP settings stored."""
    for n in range(count):
        await store.put_pop(pop(f"box{n:03d}", provider="other" if n % 2 else "as"))
    counting, lock = CountingStore(store), CountingLock()
    service = SettingsService(cast(Store, counting), cast(FlightLock, lock))
    if change == "pop add":
        await service.put_pop(pop("new"))
    elif change == "pop edit":
        await service.put_pop(pop("box000", account="changed@example.com"))
    elif change == "smtp edit":
        await service.put_smtp(smtp_setting(account="changed@example.com"))
    return counting.calls, lock.held


@pytest.mark.parametrize("change", ["pop add", "pop edit", "smtp edit"])
async def test_a_change_costs_the_same_with_2_or_40_settings(tmp_path: Path, change: str) -> None:
    found = []
    for count in (2, 40):
        async with two_providers(tmp_path / f"home{count}") as store:
            found.append(await change_counts(store, count, change))
    (few_calls, few_held), (many_calls, many_held) = found
    assert many_calls == few_calls
    assert many_held == few_held
    assert "list_pop" not in many_calls
    assert "damaged_records" not in many_calls
    assert sum(many_held.values()) == 1


async def test_a_provider_change_reconciles_only_its_users(store: SqlStore) -> None:
    for name, used in (("fax", "as"), ("scan", "other"), ("print", "other")):
        await store.put_pop(pop(name, provider=used))
        target = await load_target(store, f"pop:{name}")
        state = Acquired(Secret(f"AT-{name}"), 2e9, 1.9e9, Secret(f"RT-{name}"))
        await store.save_token(f"pop:{name}", state, binding=target.binding, expected_version=0)
    lock = CountingLock()
    service = SettingsService(store, cast(FlightLock, lock))
    await service.put_provider(provider(name="other", client_id="client-3"))
    assert set(lock.held) == {"pop:scan", "pop:print"}
    states = {sid: (await store.load_token(sid)).state for sid in ("pop:fax", "pop:scan")}
    assert isinstance(states["pop:scan"], NotAcquired)  # re-targeted: discarded
    assert isinstance(states["pop:fax"], Acquired)  # another provider's: untouched
