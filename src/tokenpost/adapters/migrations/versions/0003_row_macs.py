"""Every settings and token row carries a MAC over all its columns (issue 8, item 6).

Adds a nullable `mac` column to providers, smtp, pop, alerts and tokens and computes the MAC of
every row already there with the store's key (`store_mac`; tokenpost passes its cipher in
``config.attributes["cipher"]``). Rows are taken as they are: the upgrade cannot know whether a
row was changed behind tokenpost's back before it, only that none is from now on. A row whose
secrets were already damaged stays damaged (its blobs still do not decrypt).

Unlike the tables, the MAC format is not frozen here: it is `store_mac`'s. A change to that
format needs a migration of its own that checks every row's old MAC and writes the new one.
An instance of an older tokenpost still running on a shared PostgreSQL store writes rows without
a MAC, which then read as damaged: upgrade every instance together.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from tokenpost.adapters.store_mac import MAC_COLUMN, row_mac

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# Each authenticated table and its primary key column, as of this revision.
_TABLES = {
    "providers": "name",
    "smtp": "id",
    "pop": "name",
    "alerts": "id",
    "tokens": "setting_id",
}


def upgrade() -> None:
    cipher = context.config.attributes.get("cipher")
    if cipher is None:
        raise RuntimeError("migration 0003 computes row MACs with the store's key: open the store")
    for name in _TABLES:
        # SQLite adds a nullable column in place (ALTER TABLE … ADD COLUMN).
        with op.batch_alter_table(name) as batch:
            batch.add_column(sa.Column(MAC_COLUMN, sa.LargeBinary))
    bind = op.get_bind()
    for name, key in _TABLES.items():
        table = sa.Table(name, sa.MetaData(), autoload_with=bind)
        for row in bind.execute(sa.select(table)).mappings().all():
            mac = row_mac(cipher, name, dict(row))
            bind.execute(sa.update(table).where(table.c[key] == row[key]).values({MAC_COLUMN: mac}))


def downgrade() -> None:
    for name in _TABLES:
        with op.batch_alter_table(name) as batch:
            batch.drop_column(MAC_COLUMN)
