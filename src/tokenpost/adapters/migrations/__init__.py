"""The store's schema: the tables the code uses, and the Alembic migrations that build them.

The migrations ship inside the package (`MIGRATIONS_DIR`), so an installed wheel migrates its
own store; Alembic is configured here, without an alembic.ini. `sql_store.open_store` first reads
the `SchemaState` without writing, then calls `migrate_to_head` in one write transaction, which
chooses the key under the write lock and writes the key check (`crypto.Cipher.make_key_check`) of
a new store. Migrations get the store's cipher (``config.attributes["cipher"]``): 0003 computes
the row MACs (`store_mac`) of the rows already there.
The migration scripts in versions/ are frozen snapshots and never import these tables; a test
compares what they build with `METADATA`. Every settings, token, web account and API token table
has a `mac` column. The one row of `revision` counts the committed changes of those tables
(database triggers, 0006), for readers that keep what they read (`Store.revision`).

Alembic is imported only when a store is not at `store_schema.HEAD_REVISION` (a new or an older
store): opening a current store reads its revision with plain SQL and migrates nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from tokenpost.adapters.crypto import Cipher
from tokenpost.adapters.store_mac import MAC_COLUMN
from tokenpost.adapters.store_schema import HEAD_REVISION, KEY_CHECK
from tokenpost.errors import StoreCorruptError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = [
    "HEAD_REVISION",
    "KEY_CHECK",
    "METADATA",
    "MIGRATIONS_DIR",
    "KeyChooser",
    "SchemaState",
    "alerts_table",
    "api_tokens_table",
    "known_revisions",
    "meta_table",
    "migrate_to_head",
    "pop_table",
    "providers_table",
    "read_schema_state",
    "revision_table",
    "smtp_table",
    "tokens_table",
    "upgrade_to_head",
    "web_accounts_table",
]

MIGRATIONS_DIR: Final = Path(__file__).parent
_PG_MIGRATION_LOCK: Final = 0x746F6B656E706F  # "tokenpo": the advisory lock id for migrations

METADATA: Final = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def _mac() -> sa.Column[Any]:
    """The row MAC (`store_mac`); NULL only in a row changed outside tokenpost."""
    return sa.Column(MAC_COLUMN, sa.LargeBinary)


# If you change a table, add a migration in versions/ (test_sql_store compares them).
meta_table: Final = sa.Table(
    "meta",
    METADATA,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
)
providers_table: Final = sa.Table(
    "providers",
    METADATA,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("preset", sa.String(32), nullable=False),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("client_secret", sa.LargeBinary),
    sa.Column("flow", sa.String(32)),
    *(
        sa.Column(name, sa.Text)
        for name in (
            "tenant",
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "device_authorization_endpoint",
            "revocation_endpoint",
            "scope",
            "smtp_scope",
            "pop_scope",
            "ca_file",
            "redirect_uri",
            "proxy",
        )
    ),
    _mac(),
)


def _mail_columns() -> list[sa.Column[Any]]:
    """Columns SMTP and POP settings share; `provider` may only name an existing provider."""
    return [
        sa.Column("server", sa.Text, nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("security", sa.String(32), nullable=False),
        sa.Column("auth", sa.String(32), nullable=False),
        sa.Column("provider", sa.String(255), sa.ForeignKey("providers.name")),
        sa.Column("account", sa.Text),
        sa.Column("password", sa.LargeBinary),
        sa.Column("ca_file", sa.Text),
    ]


smtp_table: Final = sa.Table(
    "smtp",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("timeout", sa.Integer, nullable=False),
    sa.Column("sender_name", sa.Text, nullable=False),
    sa.Column("sender_address", sa.Text, nullable=False),
    *_mail_columns(),
    _mac(),
    sa.CheckConstraint("id = 1", name="one_row"),
)
pop_table: Final = sa.Table(
    "pop",
    METADATA,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("check_interval", sa.Integer, nullable=False),
    sa.Column("deliver_to", sa.Text, nullable=False),
    *_mail_columns(),
    sa.Column("leave_on_server", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("command", sa.Text),
    _mac(),
)
alerts_table: Final = sa.Table(
    "alerts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("recipients", sa.Text, nullable=False),  # a JSON list of addresses
    sa.Column("hook", sa.Text),
    sa.Column("refresh_failing_after", sa.Integer, nullable=False),
    sa.Column("receive_failing_after", sa.Integer, nullable=False),
    _mac(),
    sa.CheckConstraint("id = 1", name="one_row"),
)
tokens_table: Final = sa.Table(
    "tokens",
    METADATA,
    sa.Column("setting_id", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("public", sa.Text, nullable=False),
    sa.Column("secrets", sa.LargeBinary),
    sa.Column("binding", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    _mac(),
)

# Counted up by triggers at every committed change of the other tables but `meta` (0006): a
# hint for caches, so it carries no MAC (a forged count can only make a reader read again, or
# show what it read before a change made outside tokenpost).
revision_table: Final = sa.Table(
    "revision",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="one_row"),
)

web_accounts_table: Final = sa.Table(
    "web_accounts",
    METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id, a PHC string
    sa.Column("created_at", sa.Double, nullable=False),
    _mac(),
)
api_tokens_table: Final = sa.Table(
    "api_tokens",
    METADATA,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),  # SHA-256 of the token, hex
    sa.Column("created_at", sa.Double, nullable=False),
    _mac(),
)


def _alembic_config(
    connection: sa.Connection | None = None, cipher: Cipher | None = None
) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    # configparser interpolation: a '%' in the install path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    if cipher is not None:
        config.attributes["cipher"] = cipher
    return config


def known_revisions() -> frozenset[str]:
    """Every schema revision this code has a migration for."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return frozenset(revision.revision for revision in script.walk_revisions())


def upgrade_to_head(connection: sa.Connection, cipher: Cipher) -> None:
    """Run every migration not yet applied, on `connection`, in its transaction; migrations
    that write row MACs use `cipher`."""
    from alembic import command

    command.upgrade(_alembic_config(connection, cipher), "head")


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What a read-only look at a store found: its schema revision and key check, if any."""

    revision: str | None
    key_check: bytes | None

    @property
    def is_new(self) -> bool:
        """No tokenpost schema yet: opening it creates the store (and maybe its key)."""
        return self.revision is None and self.key_check is None


# Chooses the store's cipher for what the store holds, under the write lock: the key of an
# existing store (checked against its key check), or the key of a new one (created if needed).
KeyChooser = Callable[[SchemaState], Cipher]


async def read_schema_state(conn: AsyncConnection, where: str) -> SchemaState:
    """Read the revision and key check; writes nothing.

    Raises:
        StoreCorruptError: the revision is one this code has no migration for (a newer schema).
    """
    tables = await conn.run_sync(lambda sync: set(sa.inspect(sync).get_table_names()))
    revision = None
    if "alembic_version" in tables:
        revision = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
        if revision != HEAD_REVISION and revision not in known_revisions():
            raise StoreCorruptError(
                "the store {store} has schema revision {revision!r}, which this tokenpost does"
                " not know: it was written by a newer tokenpost; upgrade tokenpost to use it",
                store=where,
                revision=revision,
            )
    key_check = None
    if meta_table.name in tables:
        query = sa.select(meta_table.c.value).where(meta_table.c.key == KEY_CHECK)
        key_check = (await conn.execute(query)).scalar()
    return SchemaState(revision, None if key_check is None else bytes(key_check))


async def migrate_to_head(conn: AsyncConnection, keys: KeyChooser, *, where: str) -> Cipher:
    """Upgrade to head and write the key check of a new store, in the caller's transaction;
    return the store's cipher.

    The schema is read again here, under the write lock (PostgreSQL: an advisory lock), and
    `keys` chooses the key for what is found, so two processes creating one store at once agree
    on one key, and a store created meanwhile by another process is not taken for a new one.

    Raises:
        KeyFileError: the store's key check is not the key's (nothing was changed).
        StoreError: `keys` refused (a lost store beside its key).
        StoreCorruptError: a newer schema.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
    state = await read_schema_state(conn, where)
    cipher = keys(state)
    if state.revision != HEAD_REVISION:
        await conn.run_sync(upgrade_to_head, cipher)
    if state.key_check is None:
        check = cipher.make_key_check()
        await conn.execute(sa.insert(meta_table).values(key=KEY_CHECK, value=check))
    return cipher
