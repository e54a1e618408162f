"""The first schema: key check, providers, the SMTP setting, POP settings, token states.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_PROVIDER_TEXT_COLUMNS = (
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
)


def _mail_columns(table: str) -> list[sa.Column[object]]:
    return [
        sa.Column("server", sa.Text, nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("security", sa.String(32), nullable=False),
        sa.Column("auth", sa.String(32), nullable=False),
        sa.Column(
            "provider",
            sa.String(255),
            sa.ForeignKey("providers.name", name=f"fk_{table}_provider"),
        ),
        sa.Column("account", sa.Text),
        sa.Column("password", sa.LargeBinary),
        sa.Column("ca_file", sa.Text),
    ]


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "providers",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("preset", sa.String(32), nullable=False),
        sa.Column("client_id", sa.Text, nullable=False),
        sa.Column("client_secret", sa.LargeBinary),
        sa.Column("flow", sa.String(32)),
        *(sa.Column(name, sa.Text) for name in _PROVIDER_TEXT_COLUMNS),
        sa.PrimaryKeyConstraint("name", name="pk_providers"),
    )
    op.create_table(
        "smtp",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("sender_name", sa.Text, nullable=False),
        sa.Column("sender_address", sa.Text, nullable=False),
        *_mail_columns("smtp"),
        sa.PrimaryKeyConstraint("id", name="pk_smtp"),
        sa.CheckConstraint("id = 1", name="ck_smtp_one_row"),
    )
    op.create_table(
        "pop",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("check_interval", sa.Integer, nullable=False),
        sa.Column("deliver_to", sa.Text, nullable=False),
        *_mail_columns("pop"),
        sa.PrimaryKeyConstraint("name", name="pk_pop"),
    )
    op.create_table(
        "tokens",
        sa.Column("setting_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("public", sa.Text, nullable=False),
        sa.Column("secrets", sa.LargeBinary),
        sa.Column("binding", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("setting_id", name="pk_tokens"),
    )


def downgrade() -> None:
    for table in ("tokens", "pop", "smtp", "providers", "meta"):
        op.drop_table(table)
