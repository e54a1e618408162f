"""Alembic environment for the store (no alembic.ini: `sql_store` configures Alembic itself).

Migrations run on the connection `sql_store.open_store` passes in, inside its transaction, after
it has checked the key and the schema revision.
"""

from __future__ import annotations

from alembic import context

from tokenpost.adapters.migrations import METADATA

_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError(
        "tokenpost migrates its store itself when it opens it (tokenpost.adapters.sql_store)"
    )

# render_as_batch: SQLite alters tables by copying them; autogenerate must write batch ops.
context.configure(connection=_connection, target_metadata=METADATA, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
