"""Web accounts and API tokens: who may use the web page and the JSON API.

`web_accounts` keeps each account's role and argon2id password hash; `api_tokens` each API
token's role and the SHA-256 digest of the token (never the token). Both rows carry a MAC like
every settings row (`store_mac`), so a role or hash changed outside tokenpost is refused. The
tables start empty: no existing row is touched.

Revision ID: 0005
Revises: 0004
Create Date: 2025-05-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "web_accounts",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("mac", sa.LargeBinary),
        sa.PrimaryKeyConstraint("name", name="pk_web_accounts"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("mac", sa.LargeBinary),
        sa.PrimaryKeyConstraint("name", name="pk_api_tokens"),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("web_accounts")
