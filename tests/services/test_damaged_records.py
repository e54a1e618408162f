"""Services over a real store holding damaged records (issue 8, item 3): `token status` lists
every setting with the damaged ones Invalid, and the intact settings keep working — their tokens
load and refresh, the scheduler's pass goes on, a settings change keeps their tokens — while the
damaged ones can be overwritten or removed.

SQLite for everything (with the fast reader), PostgreSQL at 127.0.0.1:5432 for the listing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from typing import cast

import pytest
from service_world import TOKEN_URL, provider, smtp_setting

from fakes import FakeClock, MemoryLock, ScriptedHttp, json_response
from store_support import Backend, CountingStore
from tokenpost.adapters.sql_store import SqlStore, open_store
from tokenpost.adapters.sqlite_reader import open_sqlite_reader
from tokenpost.oauth.http import HttpRequest, HttpResponse
from tokenpost.ports import Store
from tokenpost.secret import Secret
from tokenpost.services.authorize import Authorizer
from tokenpost.services.deletion import Deleter
from tokenpost.services.endpoints import EndpointResolver
from tokenpost.services.refresh import Refresher
from tokenpost.services.scheduler import Scheduler
from tokenpost.services.settings import SettingsService
from tokenpost.services.status import SettingStatus, status
from tokenpost.services.targets import load_target
from tokenpost.settings.model import AuthMethod, PopSetting, Security
from tokenpost.tokens.state import Acquired, NotAcquired
from tokenpost.tokens.state_id import StateId

CLOCK_START = 1_800_000_000.0


def pop(name: str, **changes: object) -> PopSetting:
    base = PopSetting(
        name=name,
        server="pop.example",
        port=995,
        security=Security.TLS,
        check_interval=300,
        auth=AuthMethod.OAUTH2,
        deliver_to=f"/var/spool/{name}",
        provider="as",
        account=f"{name}@example.com",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


SETTINGS = [
    pop("fax"),
    pop("print", auth=AuthMethod.PASSWORD, provider=None, password=Secret("PW-print")),
    pop("scan", provider="as2"),
    pop("zeta"),
]


async def fill(store: SqlStore, *, expires_in: float = 3600) -> None:
    await store.put_provider(provider())
    await store.put_provider(provider(name="as2"))
    await store.put_smtp(smtp_setting())
    for setting in SETTINGS:
        await store.put_pop(setting)
    for setting_id in ("smtp", "pop:fax", "pop:scan", "pop:zeta"):
        target = await load_target(store, setting_id)
        state = Acquired(
            access_token=Secret(f"AT-{setting_id}"),
            expires_at=CLOCK_START + expires_in,
            obtained_at=CLOCK_START - 60,
            refresh_token=Secret(f"RT-{setting_id}"),
        )
        await store.save_token(setting_id, state, binding=target.binding, expected_version=0)


def damage(backend: Backend) -> None:
    """A POP password blob, a token blob, a provider row and the alerts row."""
    backend.execute("UPDATE pop SET password = ? WHERE name = 'print'", (os.urandom(40),))
    backend.execute("UPDATE tokens SET secrets = ? WHERE setting_id = 'pop:fax'", (b"z" * 40,))
    backend.execute("UPDATE providers SET client_id = 'attacker' WHERE name = 'as2'")
    backend.execute("INSERT INTO alerts (id, recipients, refresh_failing_after,"
                    " receive_failing_after) VALUES (1, '[]', 60, 60)")  # fmt: skip


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[SqlStore]:
    async with await open_store(backend.home, url=backend.url) as opened:
        yield opened


SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def by_id(rows: list[SettingStatus]) -> dict[str, SettingStatus]:
    return {row.setting_id: row for row in rows}


async def test_status_lists_every_setting_with_the_damaged_ones_invalid(
    store: SqlStore, backend: Backend
) -> None:
    await fill(store)
    damage(backend)
    rows = await status(store)
    assert [r.setting_id for r in rows] == ["smtp", "pop:fax", "pop:print", "pop:scan", "pop:zeta"]
    found = by_id(rows)
    assert found["smtp"].state is StateId.ACQUIRED
    assert found["pop:zeta"].state is StateId.ACQUIRED
    for setting_id in ("pop:fax", "pop:print", "pop:scan"):
        assert found[setting_id].state is StateId.INVALID, setting_id
    fax, printer, scan = found["pop:fax"], found["pop:print"], found["pop:scan"]
    assert fax.reason is not None
    assert "delete the token and obtain it again" in str(fax.reason)
    assert (fax.auth, fax.provider) == (AuthMethod.OAUTH2, "as")
    assert printer.reason is not None
    assert "'tokenpost pop add print'" in str(printer.reason)
    assert (printer.auth, printer.account, printer.provider) == (None, None, None)
    assert scan.reason is not None
    assert "provider 'as2'" in str(scan.reason)
    assert "'tokenpost provider add as2'" in str(scan.reason)
    assert "PW-print" not in repr(rows)


async def test_every_settings_status_reads_as_each_ones_alone(
    store: SqlStore, backend: Backend
) -> None:
    # All settings are read at once, each one alone through its own reads: same rows, damage
    # included (a damaged token, POP setting and provider; a provider that is gone).
    await fill(store)
    damage(backend)
    backend.execute("UPDATE pop SET provider = NULL WHERE name = 'zeta'")
    rows = await status(store, now=CLOCK_START)
    alone = [
        one for r in rows for one in await status(store, now=CLOCK_START, setting_id=r.setting_id)
    ]
    assert rows == alone
    assert {r.setting_id: r.state for r in rows} == {
        "smtp": StateId.ACQUIRED,
        "pop:fax": StateId.INVALID,
        "pop:print": StateId.INVALID,
        "pop:scan": StateId.INVALID,
        "pop:zeta": StateId.INVALID,  # changed outside tokenpost: its row no longer authenticates
    }


@SQLITE_ONLY
async def test_the_status_of_many_settings_costs_as_few_reads_as_of_one(store: SqlStore) -> None:
    await fill(store)
    few = CountingStore(store)
    assert len(await status(cast(Store, few), now=CLOCK_START)) == 5
    for n in range(40):
        await store.put_pop(pop(f"many{n:02d}"))
    many = CountingStore(store)
    assert len(await status(cast(Store, many), now=CLOCK_START)) == 45
    assert many.calls == few.calls
    assert sum(many.calls.values()) <= 6
    assert "load_token" not in many.calls
    assert "get_provider" not in many.calls


@SQLITE_ONLY
async def test_the_fast_reader_gives_the_same_status(store: SqlStore, backend: Backend) -> None:
    await fill(store)
    damage(backend)
    backend.execute("UPDATE smtp SET security = 'none'")
    reader = open_sqlite_reader(backend.home)
    assert reader is not None
    try:
        fast = await status(reader)
    finally:
        await reader.close()
    assert fast == await status(store)
    assert by_id(fast)["smtp"].state is StateId.INVALID
    assert fast[0].setting_id == "smtp"  # in its place: first


@SQLITE_ONLY
async def test_the_intact_tokens_still_load_and_refresh(store: SqlStore, backend: Backend) -> None:
    await fill(store, expires_in=30)  # due for a refresh
    damage(backend)
    backend.execute("UPDATE smtp SET security = 'none'")  # the SMTP setting is damaged too
    http = ScriptedHttp()

    def rotate(request: HttpRequest) -> HttpResponse:
        return json_response(
            200, {"access_token": "AT-new", "token_type": "Bearer", "expires_in": 3600}
        )

    http.routes[TOKEN_URL] = rotate
    clock = FakeClock(CLOCK_START)
    resolver = EndpointResolver(http)
    refresher = Refresher(store, http, MemoryLock(), clock, resolver)
    authorizer = Authorizer(store, http, MemoryLock(), clock, resolver, _no_listener)
    # One scheduler pass over damaged settings (a damaged SMTP setting, a damaged provider, a
    # damaged token) still refreshes the intact one.
    await Scheduler(store, clock, refresher, authorizer).tick()
    zeta = (await store.load_token("pop:zeta")).state
    assert isinstance(zeta, Acquired)
    assert zeta.access_token == Secret("AT-new")
    assert http.count(TOKEN_URL) == 1


@SQLITE_ONLY
async def test_a_settings_change_keeps_the_tokens_of_a_damaged_providers_settings(
    store: SqlStore, backend: Backend
) -> None:
    await fill(store)
    damage(backend)
    settings = SettingsService(store, MemoryLock())
    await settings.put_pop(pop("new"))
    await settings.reconcile()  # every setting's token, as an import does
    await store.put_provider(provider(name="as2"))  # `provider add as2` with its options
    scan = (await store.load_token("pop:scan")).state
    assert isinstance(scan, Acquired)
    assert scan.access_token == Secret("AT-pop:scan")


@SQLITE_ONLY
async def test_damaged_records_are_overwritten_and_removed(
    store: SqlStore, backend: Backend
) -> None:
    await fill(store)
    damage(backend)
    http = ScriptedHttp()
    deleter = Deleter(store, http, MemoryLock(), FakeClock(CLOCK_START), EndpointResolver(http))
    await deleter.delete("pop:fax")  # `token delete` over the damaged token
    assert (await store.load_token("pop:fax")).state == NotAcquired()
    settings = SettingsService(store, MemoryLock())
    await settings.remove_pop("print")  # `pop remove` of the damaged setting
    assert [p.name for p in await store.list_pop()] == ["fax", "scan", "zeta"]
    assert [d.record_id for d in await store.damaged_records()] == ["provider:as2", "alerts"]
    assert http.requests == []  # a damaged token is never sent anywhere


async def _no_listener(redirect: object) -> object:
    raise AssertionError("no browser flow in these tests")
