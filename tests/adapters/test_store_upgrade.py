"""Upgrades against real databases (SQLite file, PostgreSQL at 127.0.0.1:5432). Schema 0002: the
POP options and the alert settings are stored, and a store at 0001 is migrated with its data kept
and the new fields at their defaults. Schema 0003: a store at 0002 gets a MAC for every row and
reads as before; from then on a row changed behind tokenpost's back is refused. Schema 0004: a
provider's redirect URI and proxy, NULL for the providers already there, whose MACs stay valid.
Schema 0005: the web account and API token tables, empty; the rows already there are untouched.
Schema 0006: the revision counter, counting from then on; the rows already there are untouched."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from pg_support import fresh_database, store_url
from tokenpost.accounts import Account, Role
from tokenpost.adapters.home import Home, open_home
from tokenpost.adapters.migrations import MIGRATIONS_DIR
from tokenpost.adapters.sql_store import SqlStore, open_store
from tokenpost.adapters.sqlite_reader import open_sqlite_reader
from tokenpost.adapters.store_schema import HEAD_REVISION
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
from tokenpost.tokens.state import Acquired

PROVIDER = Provider("m365", Preset.MICROSOFT, "client-1", tenant="contoso.example")
SMTP = SmtpSetting(
    server="smtp.example.com",
    port=587,
    security=Security.STARTTLS,
    timeout=30,
    sender_name="Scanner",
    sender_address="scanner@example.com",
    auth=AuthMethod.OAUTH2,
    provider="m365",
    account="scanner@example.com",
)
FAX = PopSetting(
    name="fax",
    server="pop.example.com",
    port=995,
    security=Security.TLS,
    check_interval=300,
    auth=AuthMethod.PASSWORD,
    deliver_to="/var/spool/fax",
    account="fax@example.com",
    password=Secret("pop-password"),
)
TOKEN = Acquired(
    access_token=Secret("AT-upgrade"),
    expires_at=2_000_000_000.0,
    obtained_at=1_999_996_400.0,
    refresh_token=Secret("RT-upgrade"),
)
ALERTS = AlertSettings(
    recipients=("ops@example.com", "desk@example.com"),
    hook="/usr/local/bin/notify --room 'ops 1'",
    refresh_failing_after=900,
    receive_failing_after=172800,
)


@pytest.fixture(scope="session")
def upgrade_pg_database() -> Iterator[str]:
    with fresh_database("tokenpost_upgrade") as name:
        yield name


@dataclass(frozen=True)
class Db:
    home: Home
    url: str | None  # the store's URL; None: the home's SQLite file
    sync_url: str  # the same database, for SQLAlchemy without asyncio

    def run(self, statement: str) -> list[sa.Row[tuple[object, ...]]]:
        engine = sa.create_engine(self.sync_url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                result = conn.execute(sa.text(statement))
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def tables(self) -> set[str]:
        engine = sa.create_engine(self.sync_url, poolclass=sa.pool.NullPool)
        try:
            return set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()

    def downgrade(self, revision: str) -> None:
        engine = sa.create_engine(self.sync_url, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS_DIR))
                config.attributes["connection"] = conn
                command.downgrade(config, revision)
        finally:
            engine.dispose()

    async def open(self) -> SqlStore:
        return await open_store(self.home, url=self.url)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Db:
    home = open_home(tmp_path / "home", {})
    if request.param == "sqlite":
        return Db(home, None, f"sqlite:///{home.db_path}")
    url = store_url(request.getfixturevalue("upgrade_pg_database"))
    reset = Db(home, url, url)
    reset.run("DROP SCHEMA public CASCADE")
    reset.run("CREATE SCHEMA public")
    return reset


async def test_alerts_never_written_read_as_the_defaults(db: Db) -> None:
    async with await db.open() as store:
        assert await store.get_alerts() == AlertSettings()


async def test_alerts_are_one_row_that_put_replaces(db: Db) -> None:
    async with await db.open() as store:
        await store.put_alerts(ALERTS)
        assert await store.get_alerts() == ALERTS
        await store.put_alerts(AlertSettings(recipients=("x@example.com",)))
        assert await store.get_alerts() == AlertSettings(recipients=("x@example.com",))
        await store.put_alerts(AlertSettings())
        assert await store.get_alerts() == AlertSettings()
    assert db.run("SELECT count(*) FROM alerts") == [(1,)]
    async with await db.open() as again:  # and it stays written
        assert await again.get_alerts() == AlertSettings()


async def test_pop_options_are_stored_and_changed(db: Db) -> None:
    keep = dataclasses.replace(FAX, leave_on_server=True, command="lp -d 'Fax 2'")
    async with await db.open() as store:
        await store.put_pop(keep)
        assert await store.get_pop("fax") == keep
        await store.put_pop(FAX)
        assert await store.get_pop("fax") == FAX


async def _written_at_0001(db: Db) -> None:
    """A store with one of everything, then taken back to schema 0001 (new columns gone)."""
    async with await db.open() as store:
        await store.put_provider(PROVIDER)
        await store.put_smtp(SMTP)
        # Values that the downgrade drops: after the upgrade they must read as the defaults.
        await store.put_pop(dataclasses.replace(FAX, leave_on_server=True, command="lpr"))
        await store.put_alerts(ALERTS)
        await store.save_token("pop:fax", TOKEN, binding="b-fax", expected_version=0)
    db.downgrade("0001")
    assert db.run("SELECT version_num FROM alembic_version") == [("0001",)]
    assert "alerts" not in db.tables()


async def test_a_0001_store_is_migrated_with_its_data_and_the_defaults(db: Db) -> None:
    await _written_at_0001(db)
    async with await db.open() as store:
        assert await store.get_provider("m365") == PROVIDER
        assert await store.get_smtp() == SMTP
        assert await store.get_pop("fax") == FAX  # leave_on_server False, no command
        assert await store.get_alerts() == AlertSettings()
        token = await store.load_token("pop:fax")
        assert (token.state, token.binding, token.version) == (TOKEN, "b-fax", 1)
    assert db.run("SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_the_fast_reader_waits_for_the_migration(db: Db) -> None:
    await _written_at_0001(db)
    assert open_sqlite_reader(db.home) is None  # an older schema: the full store migrates it
    async with await db.open():
        pass
    reader = open_sqlite_reader(db.home)
    assert reader is not None
    try:
        assert await reader.get_pop("fax") == FAX
        assert await reader.get_alerts() == AlertSettings()
    finally:
        await reader.close()


async def _written_at_0002(db: Db) -> None:
    """A store with one of everything, then taken back to schema 0002 (no row MACs)."""
    async with await db.open() as store:
        await store.put_provider(PROVIDER)
        await store.put_smtp(SMTP)
        await store.put_pop(FAX)
        await store.put_alerts(ALERTS)
        await store.save_token("pop:fax", TOKEN, binding="b-fax", expected_version=0)
    db.downgrade("0002")
    assert db.run("SELECT version_num FROM alembic_version") == [("0002",)]


async def test_a_0002_store_gets_a_mac_for_every_row(db: Db) -> None:
    await _written_at_0002(db)
    async with await db.open() as store:
        assert await store.damaged_records() == []
        assert await store.get_provider("m365") == PROVIDER
        assert await store.get_smtp() == SMTP
        assert await store.list_pop() == [FAX]
        assert await store.get_alerts() == ALERTS
        token = await store.load_token("pop:fax")
        assert (token.state, token.binding, token.version) == (TOKEN, "b-fax", 1)
    for table in ("providers", "smtp", "pop", "alerts", "tokens"):
        assert db.run(f"SELECT count(*) FROM {table} WHERE mac IS NULL") == [(0,)]  # noqa: S608
    assert db.run("SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]


async def test_after_the_upgrade_a_changed_row_is_refused(db: Db) -> None:
    await _written_at_0002(db)
    async with await db.open():
        pass
    db.run("UPDATE smtp SET security = 'none'")
    async with await db.open() as store:
        assert [d.record_id for d in await store.damaged_records()] == ["smtp"]


async def test_a_secret_already_damaged_before_the_upgrade_stays_damaged(db: Db) -> None:
    # The upgrade authenticates rows as they are, but cannot make a broken blob decrypt.
    await _written_at_0002(db)
    db.run("UPDATE pop SET password = (SELECT value FROM meta) WHERE name = 'fax'")
    async with await db.open() as store:
        assert [d.record_id for d in await store.damaged_records()] == ["pop:fax"]
        assert await store.get_provider("m365") == PROVIDER


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_the_fast_reader_reads_a_store_upgraded_from_0002(db: Db) -> None:
    await _written_at_0002(db)
    assert open_sqlite_reader(db.home) is None
    async with await db.open():
        pass
    reader = open_sqlite_reader(db.home)
    assert reader is not None
    try:
        assert await reader.damaged_records() == []
        assert await reader.get_smtp() == SMTP
        assert (await reader.load_token("pop:fax")).state == TOKEN
    finally:
        await reader.close()


async def test_a_0003_store_gets_the_provider_columns_and_keeps_its_macs(db: Db) -> None:
    async with await db.open() as store:
        await store.put_provider(PROVIDER)
        await store.put_smtp(SMTP)
    db.downgrade("0003")
    async with await db.open() as store:
        assert await store.damaged_records() == []
        assert await store.get_provider("m365") == PROVIDER  # redirect_uri, proxy: None
        changed = dataclasses.replace(
            PROVIDER, redirect_uri="http://localhost/tp", proxy="http://proxy:3128"
        )
        await store.put_provider(changed)
        assert await store.get_provider("m365") == changed
    db.run("UPDATE providers SET proxy = 'http://evil:3128'")
    async with await db.open() as store:
        assert [d.record_id for d in await store.damaged_records()] == ["provider:m365"]


async def test_a_0004_store_gets_empty_account_tables_and_keeps_its_rows(db: Db) -> None:
    async with await db.open() as store:
        await store.put_provider(PROVIDER)
        await store.put_smtp(SMTP)
        await store.save_token("smtp", TOKEN, binding="b-smtp", expected_version=0)
    db.downgrade("0004")
    assert not {"web_accounts", "api_tokens"} & db.tables()
    async with await db.open() as store:
        assert await store.damaged_records() == []
        assert await store.get_smtp() == SMTP
        assert (await store.load_token("smtp")).state == TOKEN
        assert await store.list_accounts() == []
        assert await store.list_api_tokens() == []
        await store.add_account(Account("alice", Role.ADMIN, 1.0), "$argon2id$v=19$x")
        assert [a.name for a in await store.list_accounts()] == ["alice"]
    assert db.run("SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]


async def test_a_0005_store_gets_a_revision_that_counts_and_keeps_its_rows(db: Db) -> None:
    async with await db.open() as store:
        await store.put_provider(PROVIDER)
        await store.put_smtp(SMTP)
        await store.save_token("smtp", TOKEN, binding="b-smtp", expected_version=0)
    db.downgrade("0005")
    assert "revision" not in db.tables()
    async with await db.open() as store:
        assert await store.damaged_records() == []
        assert (await store.load_token("smtp")).state == TOKEN
        before = await store.revision()
        await store.put_pop(FAX)
        assert await store.revision() != before
    assert db.run("SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]
