"""POP settings keep mail on the server or run a command per message; the alert settings.

Existing POP settings get `leave_on_server` false (delete after download, as before) and no
command. The alert settings are one row, written when first set; no row reads as the defaults.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # SQLite adds columns in place (ALTER TABLE … ADD COLUMN); batch mode copies only if needed.
    with op.batch_alter_table("pop") as pop:
        pop.add_column(
            sa.Column("leave_on_server", sa.Boolean, nullable=False, server_default=sa.false())
        )
        pop.add_column(sa.Column("command", sa.Text))
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("hook", sa.Text),
        sa.Column("refresh_failing_after", sa.Integer, nullable=False),
        sa.Column("receive_failing_after", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.CheckConstraint("id = 1", name="ck_alerts_one_row"),
    )


def downgrade() -> None:
    op.drop_table("alerts")
    with op.batch_alter_table("pop") as pop:
        pop.drop_column("command")
        pop.drop_column("leave_on_server")
