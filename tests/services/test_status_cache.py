"""`StatusCache` over a real store (SQLite; PostgreSQL at 127.0.0.1:5432 for another instance's
change): it reads the store again exactly when the store changed, whoever changed it, and a
pending authorization that ends without a write (its code expired, its owner gone) shows as
ended at once. What it returns always equals `status` read afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import cast

import pytest
from service_world import provider, smtp_setting
from test_alerts import RecordingMailer, RecordingRunner

from fakes import FakeClock, FakeOwners
from store_support import Backend, CountingStore
from tokenpost.adapters.sql_store import SqlStore, open_store
from tokenpost.oauth.pending import DevicePending
from tokenpost.ports import Store
from tokenpost.secret import Secret
from tokenpost.services.alerts import Alerter
from tokenpost.services.status import status
from tokenpost.services.status_cache import StatusCache
from tokenpost.services.targets import load_target
from tokenpost.settings.model import AlertSettings, AuthMethod, PopSetting, Security
from tokenpost.tokens.state import Acquired, WaitingForAuthorization
from tokenpost.tokens.state_id import StateId

NOW = 1_800_000_000.0
READS = ("list_pop", "load_tokens", "damaged_records")  # what reading every status calls


def status_reads(store: CountingStore) -> int:
    """How many of the reads of every status `store` was asked for."""
    return sum(store.calls[name] for name in READS)


def pop(name: str) -> PopSetting:
    return PopSetting(
        name, "pop.example", 995, Security.TLS, 300, AuthMethod.OAUTH2, f"/var/spool/{name}",
        provider="as", account=f"{name}@example.com",
    )  # fmt: skip


def acquired(tag: str) -> Acquired:
    return Acquired(Secret(f"AT-{tag}"), NOW + 3600, NOW - 60, Secret(f"RT-{tag}"))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SqlStore]:
    async with await open_store(backend.home, url=backend.url) as opened:
        await opened.put_provider(provider())
        await opened.put_smtp(smtp_setting())
        await opened.put_pop(pop("fax"))
        await opened.put_pop(pop("scan"))
        target = await load_target(opened, "smtp")
        await opened.save_token(
            "smtp", acquired("smtp"), binding=target.binding, expected_version=0
        )
        yield opened


SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@SQLITE_ONLY
async def test_an_unchanged_store_is_read_once(store: SqlStore) -> None:
    counting = CountingStore(store)
    cache = StatusCache(cast(Store, counting), FakeOwners())
    first = await cache.snapshot(NOW)
    before = status_reads(counting)
    assert before > 0
    for _ in range(5):
        again = await cache.snapshot(NOW + 30)
        assert again.key == first.key
        assert again.rows == first.rows
    assert status_reads(counting) == before
    assert first.rows == await status(store, now=NOW)


@SQLITE_ONLY
async def test_a_write_is_shown_at_the_next_snapshot(store: SqlStore) -> None:
    cache = StatusCache(store, FakeOwners())
    before = await cache.snapshot(NOW)
    target = await load_target(store, "pop:fax")
    await store.save_token("pop:fax", acquired("fax"), binding=target.binding, expected_version=0)
    after = await cache.snapshot(NOW)
    assert after.key != before.key
    assert {r.setting_id: r.state for r in after.rows}["pop:fax"] is StateId.ACQUIRED
    assert after.rows == await status(store, now=NOW)
    await store.delete_pop("scan")
    gone = await cache.snapshot(NOW)
    assert [r.setting_id for r in gone.rows] == ["smtp", "pop:fax"]
    assert [s.setting_id for s in gone.settings] == ["smtp", "pop:fax"]


async def test_another_instance_s_change_is_shown(store: SqlStore, backend: Backend) -> None:
    cache = StatusCache(store, FakeOwners())
    await cache.snapshot(NOW)
    async with await open_store(backend.home, url=backend.url) as other:  # another process
        await other.put_pop(pop("zeta"))
    after = await cache.snapshot(NOW)
    assert "pop:zeta" in [r.setting_id for r in after.rows]


@SQLITE_ONLY
async def test_a_change_made_by_hand_is_shown(store: SqlStore, backend: Backend) -> None:
    cache = StatusCache(store, FakeOwners())
    await cache.snapshot(NOW)
    backend.execute("UPDATE pop SET account = 'forged@example.com' WHERE name = 'fax'")
    rows = {r.setting_id: r for r in (await cache.snapshot(NOW)).rows}
    assert rows["pop:fax"].state is StateId.INVALID  # its row no longer authenticates


@SQLITE_ONLY
async def test_requests_arriving_together_read_the_store_once(store: SqlStore) -> None:
    counting = CountingStore(store)
    cache = StatusCache(cast(Store, counting), FakeOwners())
    snapshots = await asyncio.gather(*(cache.snapshot(NOW) for _ in range(10)))
    assert len({s.key for s in snapshots}) == 1
    assert counting.calls["load_tokens"] == 1


async def _waiting(store: SqlStore, owners: FakeOwners) -> None:
    target = await load_target(store, "pop:fax")
    flow = DevicePending(
        device_code=Secret("DC-fax"), user_code="ABCD-EFGH",
        verification_uri="https://as.example/activate", expires_at=NOW + 600, interval=5,
        next_poll_at=NOW,
    )  # fmt: skip
    waiting = WaitingForAuthorization(
        flow, started_at=NOW, owner_host=owners.host, owner_id=owners.mine
    )
    await store.save_token("pop:fax", waiting, binding=target.binding, expected_version=0)


@SQLITE_ONLY
async def test_a_pending_authorization_ends_without_a_write_when_its_code_expires(
    store: SqlStore,
) -> None:
    owners = FakeOwners()
    await _waiting(store, owners)
    counting = CountingStore(store)
    cache = StatusCache(cast(Store, counting), owners)
    pending = await cache.snapshot(NOW + 599)
    before = status_reads(counting)
    ended = await cache.snapshot(NOW + 600)
    assert status_reads(counting) == before  # judged again, not read again
    states = [{r.setting_id: r.state for r in s.rows}["pop:fax"] for s in (pending, ended)]
    assert states == [StateId.WAITING_FOR_AUTHORIZATION, StateId.NOT_ACQUIRED]
    assert ended.key != pending.key
    assert ended.rows == await status(store, now=NOW + 600, owners=owners)


@SQLITE_ONLY
async def test_a_pending_authorization_ends_when_its_owner_is_gone(store: SqlStore) -> None:
    owners = FakeOwners()
    await _waiting(store, owners)
    cache = StatusCache(store, owners)
    pending = await cache.snapshot(NOW)
    owners.gone.add(owners.mine)
    ended = await cache.snapshot(NOW)
    assert {r.setting_id: r.state for r in ended.rows}["pop:fax"] is StateId.NOT_ACQUIRED
    assert ended.key != pending.key


@SQLITE_ONLY
async def test_the_refresh_check_reads_the_store_again_only_after_a_change(
    store: SqlStore,
) -> None:
    # The alerter's periodic check reads every token through the cache: on an unchanged store
    # it costs the revision and the alert settings, whatever the number of settings.
    counting = CountingStore(store)
    cache = StatusCache(cast(Store, counting), FakeOwners())
    runner = RecordingRunner()
    await store.put_alerts(AlertSettings(hook="notify", refresh_failing_after=3600))
    clock = FakeClock(NOW + 7200)
    alerter = Alerter(
        cast(Store, counting), clock, runner, RecordingMailer(), overview=cache.overview
    )
    await alerter.check_refresh()
    read = status_reads(counting)
    for _ in range(3):
        await alerter.check_refresh()
    assert status_reads(counting) == read
    assert counting.calls["load_token"] == 0
    assert runner.calls == []

    record = await store.load_token("smtp")
    assert isinstance(record.state, Acquired)
    failing = replace(record.state, failures=3, last_error="HTTP 502", failing_since=NOW)
    await store.save_token("smtp", failing, binding=record.binding, expected_version=1)
    await alerter.check_refresh()
    await alerter.drain()
    assert [call[0][-3:] for call in runner.calls] == [["refresh_failing", "smtp", "HTTP 502"]]
    assert status_reads(counting) > read
