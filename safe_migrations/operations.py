"""Migration operations that do not block production traffic on PostgreSQL.

``CREATE INDEX CONCURRENTLY`` cannot run inside a transaction, so these run in
Alembic's ``autocommit_block()``: the revision's transaction is committed
before and reopened after, and the version row and ledger row are still
written afterwards in the reopened transaction. If the build fails half-way,
PostgreSQL leaves an INVALID index behind: the revision is not recorded, and
the next run drops it first and builds it again
(:mod:`safe_migrations.index_validity`, on every migration connection).
On SQLite they fall back to the plain operations, and so they do inside a
caller's own transaction (``config.attributes["connection"]`` already in a
transaction, as migration test plugins run): that transaction must not be
committed behind the caller's back, and a plain index there is atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alembic import op
from sqlalchemy import text

from safe_migrations.backfill import backfill
from safe_migrations.runtime import IN_CALLER_TRANSACTION


def plain_operations() -> bool:
    """True on SQLite and inside a caller's own transaction (see the module docstring)."""
    context = op.get_context()
    if context.dialect.name != "postgresql":
        return True
    config = context.config
    return bool(config is not None and config.attributes.get(IN_CALLER_TRANSACTION))


def create_index_concurrently(name: str, table: str, columns: Sequence[str], **kwargs: Any) -> None:
    """Build an index without blocking writes (PostgreSQL); an earlier failed build is dropped and rebuilt."""
    context = op.get_context()
    if plain_operations():
        op.create_index(name, table, list(columns), **kwargs)
        return
    with context.autocommit_block():
        op.create_index(name, table, list(columns), postgresql_concurrently=True, if_not_exists=True, **kwargs)


def drop_index_concurrently(name: str, table: str) -> None:
    """Drop an index without blocking writes (PostgreSQL)."""
    context = op.get_context()
    if plain_operations():
        op.drop_index(name, table_name=table)
        return
    with context.autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)


def batched_update(
    table: str, assignments: str, *, pending: str, key: str = "id", batch_size: int = 1_000, pause: float = 0.0
) -> int:
    """A data migration step: ``UPDATE table SET assignments WHERE pending`` in committed batches.

    Runs outside the revision's transaction (see ``safe_migrations.backfill``);
    in offline mode (``--sql``, ``flask db lint``) there is no data to touch, so
    it emits only a comment. Put it in a revision of its own, after the one that
    changes the schema: a failed backfill is then simply run again.
    """
    context = op.get_context()
    if context.as_sql:
        context.impl.static_output(f"-- batched update of {table} (runs online only): SET {assignments}")
        return 0
    config = context.config
    if config is not None and config.attributes.get(IN_CALLER_TRANSACTION):
        # The caller's own transaction is not ours to commit: the batches run inside it.
        return backfill(op.get_bind(), table, assignments, pending=pending, key=key, batch_size=batch_size, pause=pause)
    with context.autocommit_block():
        return backfill(op.get_bind(), table, assignments, pending=pending, key=key, batch_size=batch_size, pause=pause)


def create_unique_concurrently(name: str, table: str, columns: Sequence[str]) -> None:
    """A UNIQUE constraint built without blocking writes (PostgreSQL): the unique index concurrently, then
    ``ADD CONSTRAINT ... UNIQUE USING INDEX`` (an instant). Idempotent; on SQLite a table rebuild (batch)."""
    context = op.get_context()
    if context.dialect.name != "postgresql":
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_unique_constraint(name, list(columns))
        return
    if plain_operations():  # a caller's own transaction: the index is built in it
        op.create_index(name, table, list(columns), unique=True)
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}")
        return
    with context.autocommit_block():
        if not context.as_sql and constraint_exists(name):
            return
        op.create_index(name, table, list(columns), unique=True, postgresql_concurrently=True, if_not_exists=True)
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}")


def constraint_exists(name: str) -> bool:
    """True when a constraint of that name exists in the current schema (PostgreSQL)."""
    found = op.get_bind().execute(
        text("SELECT 1 FROM pg_constraint WHERE conname = :name AND connamespace = current_schema()::regnamespace"),
        {"name": name},
    )
    return found.first() is not None


def create_foreign_key_not_valid(
    name: str, table: str, referent: str, local_cols: Sequence[str], remote_cols: Sequence[str], **kwargs: Any
) -> None:
    """A FOREIGN KEY that checks new writes at once and leaves the existing rows to :func:`validate_constraint`.

    ``ADD CONSTRAINT ... NOT VALID`` holds its lock for an instant (PostgreSQL);
    idempotent. On SQLite a table rebuild (batch) adds it, checked at once.
    """
    context = op.get_context()
    if context.dialect.name != "postgresql":
        with op.batch_alter_table(table) as batch_op:
            batch_op.create_foreign_key(name, referent, list(local_cols), list(remote_cols), **kwargs)
        return
    if context.as_sql or not constraint_exists(name):
        op.create_foreign_key(
            name, table, referent, list(local_cols), list(remote_cols), postgresql_not_valid=True, **kwargs
        )


def validate_constraint(table: str, name: str) -> None:
    """``ALTER TABLE ... VALIDATE CONSTRAINT``: scans under a lock that lets reads and writes through (PostgreSQL)."""
    context = op.get_context()
    if context.dialect.name != "postgresql":
        return  # SQLite checked it when the table was rebuilt
    if plain_operations():
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")
        return
    with context.autocommit_block():
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")
