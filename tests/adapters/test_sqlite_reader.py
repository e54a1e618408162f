"""The read-only SQLite reader against stores written by `SqlStore`: same answers, same errors,
and not one byte written."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tokenpost.adapters.home import Home, open_home
from tokenpost.adapters.migrations import MIGRATIONS_DIR
from tokenpost.adapters.sql_store import SqlStore, open_store
from tokenpost.adapters.sqlite_reader import SqliteReader, open_sqlite_reader
from tokenpost.adapters.store_schema import HEAD_REVISION
from tokenpost.errors import KeyFileError, StoreCorruptError, UsageError
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

PROVIDERS = [
    Provider(name="g", preset=Preset.GOOGLE, client_id="id-g", client_secret=Secret("cs-g")),
    Provider(name="m", preset=Preset.MICROSOFT, client_id="id-m", tenant="contoso.example"),
]
SMTP = SmtpSetting(
    server="smtp.example",
    port=587,
    security=Security.STARTTLS,
    timeout=30,
    sender_name="Scanner",
    sender_address="scanner@example.com",
    auth=AuthMethod.OAUTH2,
    provider="m",
    account="scanner@example.com",
)
POPS = [
    PopSetting(
        name="fax",
        server="pop.example",
        port=995,
        security=Security.TLS,
        check_interval=300,
        auth=AuthMethod.OAUTH2,
        deliver_to="/var/spool/fax",
        provider="g",
        account="fax@example.com",
    ),
    PopSetting(
        name="print",
        server="pop.example",
        port=995,
        security=Security.TLS,
        check_interval=60,
        auth=AuthMethod.PASSWORD,
        deliver_to="/var/spool/print",
        account="print@example.com",
        password=Secret("pw-print"),
        leave_on_server=True,
        command="lp -d 'Office 2'",
    ),
]
ALERTS = AlertSettings(recipients=("ops@example.com",), hook="notify", refresh_failing_after=600)
TOKENS = {
    "smtp": Acquired(
        access_token=Secret("AT-smtp"),
        expires_at=2_000_000_000.0,
        obtained_at=1_999_996_400.0,
        refresh_token=Secret("RT-smtp"),
    ),
    "pop:fax": Invalid(reason="invalid_grant", since=1_999_990_000.0),
}
SETTING_IDS = ["smtp", "pop:fax", "pop:print", "pop:absent"]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return open_home(tmp_path / "home", {})


@pytest.fixture
async def populated(home: Home) -> AsyncIterator[SqlStore]:
    async with await open_store(home) as store:
        for provider in PROVIDERS:
            await store.put_provider(provider)
        await store.put_smtp(SMTP)
        for pop in POPS:
            await store.put_pop(pop)
        for setting_id, state in TOKENS.items():
            await store.save_token(setting_id, state, binding=f"b-{setting_id}", expected_version=0)
        await store.put_alerts(ALERTS)
        yield store


def _reader(home: Home) -> SqliteReader:
    reader = open_sqlite_reader(home)
    assert reader is not None
    return reader


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_head_revision_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


async def test_reads_what_the_full_store_reads(home: Home, populated: SqlStore) -> None:
    reader = _reader(home)
    try:
        assert await reader.get_smtp() == await populated.get_smtp() == SMTP
        assert await reader.list_pop() == await populated.list_pop() == POPS
        assert await reader.list_providers() == await populated.list_providers() == PROVIDERS
        assert await reader.get_alerts() == await populated.get_alerts() == ALERTS
        for name in ("g", "m", "absent"):
            assert await reader.get_provider(name) == await populated.get_provider(name)
        for name in ("fax", "print", "absent"):
            assert await reader.get_pop(name) == await populated.get_pop(name)
        for setting_id in SETTING_IDS:
            assert await reader.load_token(setting_id) == await populated.load_token(setting_id)
        assert (await reader.load_token("smtp")).state == TOKENS["smtp"]
        assert (await reader.load_token("pop:absent")).state == NotAcquired()
    finally:
        await reader.close()


async def test_an_invalid_setting_id_is_refused_like_the_full_store(
    home: Home, populated: SqlStore
) -> None:
    reader = _reader(home)
    try:
        with pytest.raises(UsageError) as ours:
            await reader.load_token("imap")
        with pytest.raises(UsageError) as theirs:
            await populated.load_token("imap")
        assert str(ours.value) == str(theirs.value)
    finally:
        await reader.close()


async def test_writes_are_refused(home: Home, populated: SqlStore) -> None:
    reader = _reader(home)
    try:
        with pytest.raises(UsageError, match="read-only"):
            await reader.put_smtp(SMTP)
        with pytest.raises(UsageError, match="read-only"):
            await reader.put_alerts(AlertSettings())
        with pytest.raises(UsageError, match="read-only"):
            await reader.save_token("smtp", NotAcquired(), binding="", expected_version=1)
    finally:
        await reader.close()


async def test_reading_does_not_change_the_database(home: Home, populated: SqlStore) -> None:
    await populated.close()  # checkpoints the WAL into the file
    before = _digest(home.db_path)
    reader = _reader(home)
    try:
        for setting_id in SETTING_IDS:
            await reader.load_token(setting_id)
        await reader.list_pop()
        await reader.get_smtp()
    finally:
        await reader.close()
    assert _digest(home.db_path) == before


async def test_a_wrong_key_gives_the_full_stores_error(home: Home, populated: SqlStore) -> None:
    await populated.close()
    home.key_path.write_text(base64.b64encode(b"k" * 32).decode() + "\n")
    before = _digest(home.db_path)
    with pytest.raises(KeyFileError) as ours:
        open_sqlite_reader(home)
    with pytest.raises(KeyFileError) as theirs:
        await open_store(home)
    assert str(ours.value) == str(theirs.value)
    assert "not the key" in str(ours.value)
    assert _digest(home.db_path) == before


async def test_a_missing_key_gives_the_full_stores_error(home: Home, populated: SqlStore) -> None:
    await populated.close()
    home.key_path.unlink()
    with pytest.raises(KeyFileError) as ours:
        open_sqlite_reader(home)
    with pytest.raises(KeyFileError) as theirs:
        await open_store(home)
    assert str(ours.value) == str(theirs.value)
    assert not home.key_path.exists()


async def test_a_file_that_is_not_sqlite_gives_the_full_stores_error(home: Home) -> None:
    home.db_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreCorruptError) as ours:
        open_sqlite_reader(home)
    with pytest.raises(StoreCorruptError) as theirs:
        await open_store(home)
    assert str(ours.value) == str(theirs.value)


async def test_a_store_not_at_head_is_left_to_the_full_store(home: Home) -> None:
    assert open_sqlite_reader(home) is None  # no file
    home.db_path.touch(mode=0o600)
    assert open_sqlite_reader(home) is None  # no schema yet
    assert not home.key_path.exists()
    async with await open_store(home):
        pass
    reader = _reader(home)  # now at head, with a key check
    await reader.close()


async def test_alerts_never_written_read_as_the_defaults(home: Home) -> None:
    async with await open_store(home):
        pass
    reader = _reader(home)
    try:
        assert await reader.get_alerts() == AlertSettings()
    finally:
        await reader.close()
