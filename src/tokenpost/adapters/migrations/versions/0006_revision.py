"""The store's revision: one counter that every committed change of a setting, provider, alert
setting, token, web account or API token counts up, whoever makes it (tokenpost in any process,
or SQL run by hand).

Readers that keep what they read (the web page's status of every setting, the account and API
tokens every request is checked against) compare it with what they saw and read again only when
it differs. Database triggers count, so no writer can forget
to. On PostgreSQL they are deferred constraint triggers: the counter's row is locked at commit,
after every other row the transaction writes, so two writers never wait for each other in
opposite orders. SQLite writes one transaction at a time; its row triggers count at once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

COUNTED = ("providers", "smtp", "pop", "alerts", "tokens", "web_accounts", "api_tokens")
BUMP = "UPDATE revision SET n = n + 1 WHERE id = 1"
PG_FUNCTION = "tokenpost_count_revision"


def upgrade() -> None:
    op.create_table(
        "revision",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="ck_revision_one_row"),
        sa.PrimaryKeyConstraint("id", name="pk_revision"),
    )
    op.execute("INSERT INTO revision (id, n) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()


def _sqlite_triggers() -> None:
    for table in COUNTED:
        for event in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER revision_{event.lower()}_{table} AFTER {event} ON {table}"
                f" BEGIN {BUMP}; END"
            )


def _postgresql_triggers() -> None:
    op.execute(
        f"CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS"
        f" $$ BEGIN {BUMP}; RETURN NULL; END $$"
    )
    for table in COUNTED:
        op.execute(
            f"CREATE CONSTRAINT TRIGGER revision_{table} AFTER INSERT OR UPDATE OR DELETE"
            f" ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            f" EXECUTE FUNCTION {PG_FUNCTION}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in COUNTED:
            op.execute(f"DROP TRIGGER revision_{table} ON {table}")
        op.execute(f"DROP FUNCTION {PG_FUNCTION}()")
    else:
        for table in COUNTED:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER revision_{event}_{table}")
    op.drop_table("revision")
