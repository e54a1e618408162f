"""A provider's browser-flow redirect URI and its HTTP proxy.

Both are nullable: an existing provider keeps its preset's redirect URI and the environment's
proxy, as before. A NULL column takes no part in a row's MAC (`store_mac`), so the existing MACs
stay valid and no row is rewritten.

Revision ID: 0004
Revises: 0003
Create Date: 2025-04-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # SQLite adds nullable columns in place (ALTER TABLE … ADD COLUMN).
    with op.batch_alter_table("providers") as providers:
        providers.add_column(sa.Column("redirect_uri", sa.Text))
        providers.add_column(sa.Column("proxy", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("providers") as providers:
        providers.drop_column("proxy")
        providers.drop_column("redirect_uri")
