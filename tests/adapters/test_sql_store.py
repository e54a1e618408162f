"""The store against real databases: a SQLite file in a temporary home, and PostgreSQL at
127.0.0.1:5432 (user postgres, trust auth) in a database made for this test session
(store_support, conftest)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import stat
import time
import types
import typing
import zlib
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from store_support import POSTGRES_ONLY, SQLITE_ONLY, Backend, reseal
from tokenpost.adapters.crypto import load_key
from tokenpost.adapters.home import Home, open_home
from tokenpost.adapters.migrations import METADATA, MIGRATIONS_DIR
from tokenpost.adapters.sql_store import SqlStore, open_store
from tokenpost.errors import (
    ConflictError,
    KeyFileError,
    NotFoundError,
    StoreCorruptError,
    StoreError,
    UsageError,
)
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
from tokenpost.text import Text
from tokenpost.tokens.state import Acquired, Invalid, NotAcquired, TokenState

# --- values with every field set to something other than its default ------------------------------
# Generated from the type hints, so that a field added to a setting, state or flow is stored and
# compared here without a change to this test.


def options(hint: Any, label: str) -> list[Any]:
    """Values for a field of type `hint`, derived from `label` (the same label, the same value)."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        arms = [arm for arm in typing.get_args(hint) if arm is not types.NoneType]
        return [value for arm in arms for value in options(arm, label)]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return samples(hint, label)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return [list(hint)[-1]]
    number = zlib.crc32(label.encode()) % 10_000
    scalars: dict[Any, Any] = {
        Secret: Secret(f"SECRET[{label}]"),
        float: 1_700_000_000.25 + number,
        int: 40 + number,
        str: f"text[{label}]",
        bool: True,  # every bool field defaults to False
        Text: Text("{label} happened", label=label),
    }
    if origin is tuple:
        return [(f"{label}-1", f"{label}-2")]
    if hint not in scalars:
        raise TypeError(f"no sample for {hint!r} ({label})")
    return [scalars[hint]]


def samples(cls: type, label: str, **fixed: object) -> list[Any]:
    """One instance per combination of union arms; every field set, none to its default."""
    hints = typing.get_type_hints(cls)
    names = list(hints)
    choices = [[fixed[n]] if n in fixed else options(hints[n], f"{label}.{n}") for n in names]
    return [cls(**dict(zip(names, combo, strict=True))) for combo in itertools.product(*choices)]


def all_states() -> list[TokenState]:
    return options(TokenState, "state")


def secret_texts(value: Any) -> list[str]:
    if isinstance(value, Secret):
        return [value.reveal()]
    if isinstance(value, tuple):
        return [text for item in value for text in secret_texts(item)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [t for f in dataclasses.fields(value) for t in secret_texts(getattr(value, f.name))]
    return []


def full_provider(name: str = "prov") -> Provider:
    (provider,) = samples(Provider, "provider", name=name)
    return typing.cast(Provider, provider)


def full_smtp(provider: str = "prov") -> SmtpSetting:
    (smtp,) = samples(SmtpSetting, "smtp", provider=provider)
    return typing.cast(SmtpSetting, smtp)


def full_pop(name: str, provider: str = "prov") -> PopSetting:
    (pop,) = samples(PopSetting, f"pop:{name}", name=name, provider=provider)
    return typing.cast(PopSetting, pop)


def minimal_pop(name: str, provider: str | None = None) -> PopSetting:
    return PopSetting(
        name=name,
        server="pop.example",
        port=995,
        security=Security.TLS,
        check_interval=60,
        auth=AuthMethod.OAUTH2 if provider else AuthMethod.NONE,
        deliver_to="/var/spool/in",
        provider=provider,
    )


def acquired(tag: str) -> Acquired:
    return Acquired(
        access_token=Secret(f"AT-{tag}"),
        expires_at=2_000_000_000.0,
        obtained_at=1_999_996_400.0,
        refresh_token=Secret(f"RT-{tag}"),
    )


def test_samples_set_every_field_away_from_its_default() -> None:
    for value in [*all_states(), full_provider(), full_smtp(), full_pop("x")]:
        for cls_field in dataclasses.fields(value):
            if cls_field.default is not dataclasses.MISSING:
                assert getattr(value, cls_field.name) != cls_field.default, cls_field.name


# --- settings -------------------------------------------------------------------------------------


async def test_settings_round_trip_every_field(store: SqlStore) -> None:
    provider, smtp, pop = full_provider(), full_smtp(), full_pop("fax")
    await store.put_provider(provider)
    await store.put_smtp(smtp)
    await store.put_pop(pop)
    assert await store.get_provider("prov") == provider
    assert await store.get_smtp() == smtp
    assert await store.get_pop("fax") == pop
    assert await store.list_providers() == [provider]
    assert await store.list_pop() == [pop]


async def test_settings_with_only_required_fields(store: SqlStore) -> None:
    provider = Provider(name="g", preset=Preset.GOOGLE, client_id="id")
    await store.put_provider(provider)
    await store.put_pop(minimal_pop("a"))
    assert await store.get_provider("g") == provider
    assert await store.get_pop("a") == minimal_pop("a")
    assert await store.get_smtp() is None


async def test_put_replaces_and_lists_are_sorted(store: SqlStore) -> None:
    for name in ("zeta", "alpha", "mid"):
        await store.put_provider(Provider(name=name, preset=Preset.GENERIC, client_id="1"))
        await store.put_pop(minimal_pop(name))
    changed = Provider(name="mid", preset=Preset.MICROSOFT, client_id="2", tenant="common")
    await store.put_provider(changed)
    await store.put_pop(dataclasses.replace(minimal_pop("mid"), port=110))
    await store.put_smtp(full_smtp("alpha"))
    await store.put_smtp(dataclasses.replace(full_smtp("mid"), password=None))
    assert [p.name for p in await store.list_providers()] == ["alpha", "mid", "zeta"]
    assert [p.name for p in await store.list_pop()] == ["alpha", "mid", "zeta"]
    assert await store.get_provider("mid") == changed
    pop = await store.get_pop("mid")
    assert pop is not None
    assert pop.port == 110
    smtp = await store.get_smtp()
    assert smtp == dataclasses.replace(full_smtp("mid"), password=None)


async def test_unknown_names_read_as_none(store: SqlStore) -> None:
    assert await store.get_provider("nope") is None
    assert await store.get_pop("nope") is None
    assert await store.list_providers() == []
    assert await store.list_pop() == []


async def test_delete_provider_refuses_while_used(store: SqlStore) -> None:
    await store.put_provider(full_provider("used"))
    await store.put_smtp(full_smtp("used"))
    await store.put_pop(minimal_pop("b", "used"))
    await store.put_pop(minimal_pop("a", "used"))
    with pytest.raises(UsageError, match="used by smtp, pop:a, pop:b") as caught:
        await store.delete_provider("used")
    assert not isinstance(caught.value, NotFoundError)
    assert await store.get_provider("used") is not None


async def test_delete_provider(store: SqlStore) -> None:
    await store.put_provider(full_provider("free"))
    await store.put_pop(minimal_pop("a"))
    await store.delete_provider("free")
    assert await store.get_provider("free") is None
    with pytest.raises(NotFoundError, match="'free'"):
        await store.delete_provider("free")


async def test_settings_must_name_an_existing_provider(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="'ghost'"):
        await store.put_pop(minimal_pop("a", "ghost"))
    with pytest.raises(NotFoundError, match="'ghost'"):
        await store.put_smtp(full_smtp("ghost"))
    assert await store.list_pop() == []
    assert await store.get_smtp() is None


async def test_delete_pop_removes_its_token(store: SqlStore) -> None:
    await store.put_pop(minimal_pop("a"))
    await store.put_pop(minimal_pop("b"))
    await store.save_token("pop:a", acquired("a"), binding="x", expected_version=0)
    await store.save_token("pop:b", acquired("b"), binding="x", expected_version=0)
    await store.delete_pop("a")
    assert await store.get_pop("a") is None
    assert (await store.load_token("pop:a")).version == 0
    assert (await store.load_token("pop:b")).state == acquired("b")
    with pytest.raises(NotFoundError, match="'a'"):
        await store.delete_pop("a")


# --- tokens ---------------------------------------------------------------------------------------


async def test_a_token_never_written(store: SqlStore) -> None:
    record = await store.load_token("pop:new")
    assert record.state == NotAcquired()
    assert (record.setting_id, record.binding, record.version) == ("pop:new", "", 0)


async def test_every_state_round_trips(store: SqlStore) -> None:
    states = all_states()
    assert len(states) >= 7  # four states, both flows, both kinds of `previous`
    for index, state in enumerate(states):
        setting_id = f"pop:s{index}"
        before = time.time()
        saved = await store.save_token(setting_id, state, binding=f"b{index}", expected_version=0)
        assert before <= saved.updated_at <= time.time()
        loaded = await store.load_token(setting_id)
        assert loaded == saved
        assert loaded.state == state
        assert (loaded.version, loaded.binding) == (1, f"b{index}")


async def test_versions_grow_and_stale_writes_lose(store: SqlStore) -> None:
    first = await store.save_token("smtp", acquired("1"), binding="b", expected_version=0)
    second = await store.save_token("smtp", acquired("2"), binding="b", expected_version=1)
    assert (first.version, second.version) == (1, 2)
    for stale in (0, 1, 3):
        with pytest.raises(ConflictError, match="smtp"):
            await store.save_token("smtp", acquired("lost"), binding="b", expected_version=stale)
    assert (await store.load_token("smtp")).state == acquired("2")


async def test_concurrent_writers_exactly_one_wins(store: SqlStore) -> None:
    await store.save_token("smtp", acquired("0"), binding="b", expected_version=0)
    results = await asyncio.gather(
        *(
            store.save_token("smtp", acquired(str(i)), binding="b", expected_version=1)
            for i in range(5)
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, ConflictError) for r in results if r not in winners)
    assert (await store.load_token("smtp")).state == winners[0].state


async def test_concurrent_first_writes_exactly_one_wins(store: SqlStore) -> None:
    results = await asyncio.gather(
        *(
            store.save_token("pop:a", acquired(str(i)), binding="b", expected_version=0)
            for i in range(3)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, ConflictError) for r in results) == 2


async def test_two_instances_see_each_others_writes(store: SqlStore, backend: Backend) -> None:
    async with await open_store(backend.home, url=backend.url) as other:
        await store.put_provider(full_provider())
        assert await other.get_provider("prov") == full_provider()
        await other.save_token("smtp", acquired("a"), binding="b", expected_version=0)
        record = await store.load_token("smtp")
        assert (record.state, record.version) == (acquired("a"), 1)
        await store.save_token("smtp", acquired("b"), binding="b", expected_version=1)
        with pytest.raises(ConflictError):
            await other.save_token("smtp", acquired("c"), binding="b", expected_version=1)
        assert (await other.load_token("smtp")).state == acquired("b")


@pytest.mark.parametrize("setting_id", ["", "SMTP", "pop:", "pop:a/b", "imap:x"])
async def test_setting_ids_are_checked(store: SqlStore, setting_id: str) -> None:
    with pytest.raises(UsageError, match="not a setting id"):
        await store.load_token(setting_id)
    with pytest.raises(UsageError, match="not a setting id"):
        await store.save_token(setting_id, NotAcquired(), binding="", expected_version=0)


async def test_negative_expected_version_is_refused(store: SqlStore) -> None:
    with pytest.raises(UsageError, match="expected_version"):
        await store.save_token("smtp", NotAcquired(), binding="", expected_version=-1)


# --- encryption at rest ---------------------------------------------------------------------------


async def _fill_with_secrets(store: SqlStore) -> list[str]:
    """Store one of everything that holds a secret; return the secret texts."""
    await store.put_provider(full_provider())
    await store.put_smtp(full_smtp())
    await store.put_pop(full_pop("fax"))
    states = all_states()
    for index, state in enumerate(states):
        await store.save_token(f"pop:s{index}", state, binding="b", expected_version=0)
    found = [t for v in [full_provider(), full_smtp(), full_pop("fax")] for t in secret_texts(v)]
    found += [text for state in states for text in secret_texts(state)]
    assert len(found) >= 12
    return found


@SQLITE_ONLY
async def test_no_secret_is_readable_in_the_sqlite_files(store: SqlStore, backend: Backend) -> None:
    texts = await _fill_with_secrets(store)

    def raw_bytes() -> bytes:
        files = sorted(backend.home.path.glob("tokenpost.db*"))
        assert backend.home.db_path in files
        return b"".join(path.read_bytes() for path in files)

    while_open = raw_bytes()
    await store.close()
    after_close = raw_bytes()
    for raw in (while_open, after_close):
        assert b"text[state.flow.user_code]" in raw  # non-secret fields stay readable
        for text in texts:
            assert text.encode() not in raw, text
            assert text.encode("utf-16-le") not in raw, text


@POSTGRES_ONLY
async def test_no_secret_is_readable_in_postgres(store: SqlStore, backend: Backend) -> None:
    texts = await _fill_with_secrets(store)
    dump = "\n".join(
        str(row)
        for table in ("meta", "providers", "smtp", "pop", "tokens")
        for row in backend.execute(
            f"SELECT t::text, encode(t::text::bytea, 'escape') FROM {table} t"  # noqa: S608 - our table names
        )
    )
    assert "text[state.flow.user_code]" in dump
    for text in texts:
        assert text not in dump, text


async def test_a_token_blob_moved_to_another_row_does_not_decrypt(
    store: SqlStore, backend: Backend
) -> None:
    await store.save_token("pop:a", acquired("a"), binding="b", expected_version=0)
    await store.save_token("pop:b", acquired("b"), binding="b", expected_version=0)
    backend.execute(
        "UPDATE tokens SET secrets = (SELECT secrets FROM tokens WHERE setting_id = 'pop:a')"
        " WHERE setting_id = 'pop:b'"
    )
    assert (await store.load_token("pop:a")).state == acquired("a")
    moved = await store.load_token("pop:b")
    assert isinstance(moved.state, Invalid)
    assert "token of pop:b" in str(moved.state.reason)
    assert "AT-a" not in repr(moved)


async def test_setting_secrets_moved_to_another_row_do_not_decrypt(
    store: SqlStore, backend: Backend
) -> None:
    await store.put_provider(full_provider("p1"))
    await store.put_provider(full_provider("p2"))
    await store.put_smtp(full_smtp("p1"))
    await store.put_pop(full_pop("fax", "p1"))
    backend.execute(
        "UPDATE providers SET client_secret ="
        " (SELECT client_secret FROM providers WHERE name = 'p1') WHERE name = 'p2'"
    )
    backend.execute("UPDATE pop SET password = (SELECT password FROM smtp)")
    assert await store.get_provider("p1") == full_provider("p1")
    with pytest.raises(StoreCorruptError):
        await store.get_provider("p2")
    with pytest.raises(StoreCorruptError):
        await store.get_pop("fax")


async def test_unreadable_public_part_is_reported(store: SqlStore, backend: Backend) -> None:
    # Authentic (its MAC is right) but unreadable: as written by a faulty or newer tokenpost.
    await store.save_token("smtp", acquired("a"), binding="b", expected_version=0)
    backend.execute('UPDATE tokens SET public = \'{"@type": "lost"}\'')
    reseal(backend, "tokens", "setting_id", "smtp")
    record = await store.load_token("smtp")
    assert isinstance(record.state, Invalid)
    assert str(record.state.reason).startswith(
        "the token of smtp: a stored token state is unreadable"
    )
    assert (record.version, record.binding) == (1, "b")


# --- opening: keys, files, schema -----------------------------------------------------------------


def snapshot(backend: Backend) -> object:
    """Everything a wrongly opened store must leave as it was."""
    if backend.pg_database is None:
        return {
            path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(backend.home.path.iterdir())
            if path.is_file()
        }
    return [
        backend.execute(f"SELECT t::text FROM {table} t ORDER BY 1")  # noqa: S608 - schema constants
        for table in METADATA.tables
    ]


async def _store_with_a_token(backend: Backend) -> None:
    async with await open_store(backend.home, url=backend.url) as first:
        await first.save_token("smtp", acquired("kept"), binding="b", expected_version=0)


async def test_wrong_key_is_refused_before_anything_is_written(backend: Backend) -> None:
    await _store_with_a_token(backend)
    key = backend.home.key_path
    key.unlink()
    load_key(key, create=True)  # a different key
    before = snapshot(backend)
    with pytest.raises(KeyFileError, match="is not the key") as caught:
        await open_store(backend.home, url=backend.url)
    assert str(key) in str(caught.value)
    assert snapshot(backend) == before


async def test_missing_key_is_not_replaced(backend: Backend) -> None:
    await _store_with_a_token(backend)
    backend.home.key_path.unlink()
    before = snapshot(backend)
    with pytest.raises(KeyFileError, match="is missing"):
        await open_store(backend.home, url=backend.url)
    assert not backend.home.key_path.exists()
    assert snapshot(backend) == before


async def test_reopened_store_keeps_its_data(backend: Backend) -> None:
    await _store_with_a_token(backend)
    async with await open_store(backend.home, url=backend.url) as again:
        assert (await again.load_token("smtp")).state == acquired("kept")


async def test_key_file_from_the_environment_is_used(tmp_path: Path) -> None:
    home = open_home(tmp_path / "h", {"TOKENPOST_KEY_FILE": str(tmp_path / "k")})
    async with await open_store(home):
        pass
    assert (tmp_path / "k").exists()
    assert not (home.path / "key").exists()


async def test_a_file_that_is_not_sqlite_is_refused(home: Home) -> None:
    home.db_path.write_bytes(b"this is a text file, not a database\n" * 200)
    before = home.db_path.read_bytes()
    with pytest.raises(StoreCorruptError, match="not a readable tokenpost database") as caught:
        await open_store(home)
    assert str(home.db_path) in str(caught.value)
    assert home.db_path.read_bytes() == before
    assert not home.key_path.exists()


async def test_a_newer_schema_is_refused(backend: Backend) -> None:
    await _store_with_a_token(backend)
    backend.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    before = snapshot(backend)
    with pytest.raises(StoreCorruptError, match="newer tokenpost"):
        await open_store(backend.home, url=backend.url)
    assert snapshot(backend) == before


async def test_migrations_build_exactly_the_tables_the_code_uses(
    store: SqlStore, backend: Backend
) -> None:
    url = backend.url or f"sqlite:///{backend.home.db_path}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), METADATA)
    finally:
        engine.dispose()
    assert differences == []


def test_migrations_ship_inside_the_package() -> None:
    assert MIGRATIONS_DIR.parent.name == "adapters"
    assert MIGRATIONS_DIR.parent.parent.name == "tokenpost"
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert sorted(p.name for p in (MIGRATIONS_DIR / "versions").glob("*.py")) == [
        "0001_initial.py",
        "0002_pop_options_and_alerts.py",
        "0003_row_macs.py",
        "0004_provider_redirect_and_proxy.py",
        "0005_web_accounts_and_api_tokens.py",
        "0006_revision.py",
    ]


@SQLITE_ONLY
async def test_sqlite_file_is_private_and_in_wal_mode(store: SqlStore, backend: Backend) -> None:
    await store.save_token("smtp", acquired("a"), binding="b", expected_version=0)
    files = sorted(backend.home.path.glob("tokenpost.db*"))
    assert [p.name for p in files] == ["tokenpost.db", "tokenpost.db-shm", "tokenpost.db-wal"]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert backend.execute("PRAGMA journal_mode") == [("wal",)]


async def test_new_store_opened_twice_at_once_agrees_on_one_key(backend: Backend) -> None:
    first, second = await asyncio.gather(
        open_store(backend.home, url=backend.url), open_store(backend.home, url=backend.url)
    )
    try:
        await first.save_token("smtp", acquired("a"), binding="b", expected_version=0)
        assert (await second.load_token("smtp")).state == acquired("a")
    finally:
        await first.close()
        await second.close()
    assert backend.execute("SELECT count(*) FROM meta") == [(1,)]


async def test_unreachable_database_is_reported_without_its_password(home: Home) -> None:
    url = "postgresql+psycopg://tokenpost:hunter2@127.0.0.1:1/none?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        await open_store(home, url=url)
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)
    assert not home.key_path.exists()


@pytest.mark.parametrize(
    "url", ["mysql+aiomysql://db/x", "postgresql://u@h/db", "sqlite:///x.db", "not a url"]
)
async def test_unsupported_store_urls_are_refused(home: Home, url: str) -> None:
    with pytest.raises(UsageError, match="store URL"):
        await open_store(home, url=url)
    assert not home.key_path.exists()


async def test_new_store_in_a_missing_directory_creates_no_key(home: Home) -> None:
    url = f"sqlite+aiosqlite:///{home.path}/absent/tokenpost.db"
    with pytest.raises(StoreError, match="cannot create the database file"):
        await open_store(home, url=url)
    assert not home.key_path.exists()


# --- the revision: every committed change of a setting or token counts, whoever makes it --------


async def test_every_write_changes_the_revision_and_reads_do_not(store: SqlStore) -> None:
    seen = [await store.revision()]

    async def changed() -> None:
        now = await store.revision()
        assert now not in seen, "a write left the revision as it was"
        seen.append(now)

    await store.put_provider(full_provider())
    await changed()
    await store.put_smtp(full_smtp())
    await changed()
    await store.put_pop(full_pop("fax"))
    await changed()
    await store.put_alerts(AlertSettings(recipients=("ops@example.com",)))
    await changed()
    record = await store.save_token("smtp", acquired("a"), binding="b", expected_version=0)
    await changed()
    await store.save_token("smtp", acquired("b"), binding="b", expected_version=record.version)
    await changed()
    await store.delete_pop("fax")
    await changed()
    for read in (
        store.list_providers(), store.get_smtp(), store.list_pop(), store.get_alerts(),
        store.load_tokens(), store.load_token("smtp"), store.damaged_records(),
    ):  # fmt: skip
        await read
    assert await store.revision() == seen[-1]


async def test_a_refused_write_leaves_the_revision(store: SqlStore) -> None:
    await store.put_provider(full_provider())
    await store.put_smtp(full_smtp())
    await store.save_token("smtp", acquired("a"), binding="b", expected_version=0)
    before = await store.revision()
    with pytest.raises(ConflictError):
        await store.save_token("smtp", acquired("b"), binding="b", expected_version=0)
    with pytest.raises(UsageError):
        await store.delete_provider("prov")  # still used
    assert await store.revision() == before


async def test_a_change_made_outside_tokenpost_changes_the_revision(
    store: SqlStore, backend: Backend
) -> None:
    await store.put_provider(full_provider())
    before = await store.revision()
    backend.execute("UPDATE providers SET client_id = 'changed by hand'")
    assert await store.revision() != before


async def test_another_instance_sees_the_revision_change(store: SqlStore, backend: Backend) -> None:
    async with await open_store(backend.home, url=backend.url) as other:
        before = await other.revision()
        await store.put_provider(full_provider())
        assert await other.revision() != before


@SQLITE_ONLY
async def test_a_sqlite_store_reads_without_suspending(store: SqlStore) -> None:
    """A SQLite file's settings and token reads run on the caller's thread: each coroutine
    finishes at its first step, never waiting for a driver's thread (DESIGN: a refresh reads
    its token; through the async driver that read cost five hops to another thread)."""
    await store.put_provider(full_provider())
    await store.put_smtp(full_smtp())
    await store.put_pop(full_pop("fax"))
    await store.save_token("smtp", acquired("a"), binding="b", expected_version=0)
    reads = {
        "revision": store.revision(),
        "damaged_records": store.damaged_records(),
        "list_providers": store.list_providers(),
        "get_provider": store.get_provider("prov"),
        "get_smtp": store.get_smtp(),
        "list_pop": store.list_pop(),
        "get_pop": store.get_pop("fax"),
        "get_alerts": store.get_alerts(),
        "load_token": store.load_token("smtp"),
        "load_tokens": store.load_tokens(),
    }
    answers = {}
    for name, read in reads.items():
        with pytest.raises(StopIteration) as done:
            read.send(None)
        answers[name] = done.value.value
    assert answers["get_pop"] == full_pop("fax")
    assert answers["load_token"].state == acquired("a")
    assert [p.name for p in answers["list_providers"]] == ["prov"]


async def test_a_read_sees_the_write_before_it(store: SqlStore) -> None:
    """Reads and writes go through different connections on SQLite: a read after a write
    returns sees it, token after token."""
    await store.put_provider(full_provider())
    await store.put_smtp(full_smtp())
    version = 0
    for n in range(20):
        record = await store.save_token(
            "smtp", acquired(f"t{n}"), binding="b", expected_version=version
        )
        version = record.version
        assert (await store.load_token("smtp")).state == acquired(f"t{n}")
        assert (await store.load_token("smtp")).version == version
