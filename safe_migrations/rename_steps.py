"""The steps of a column rename that no pod notices: expand now, contract after the rollout.

``flask db migrate --rename TABLE.OLD:NEW`` writes two revisions that call
these (see :mod:`safe_migrations.rename`):

1. the **expand** revision (ordinary, applied at pod start-up) adds the new
   column beside the old one (:func:`add_column_once`), a trigger keeping the
   two equal on every INSERT and UPDATE whichever one the writer set
   (:func:`sync_renamed_column`: the previous image writes the old name, the
   new image the new name), copies the existing rows in committed batches
   (``operations.batched_update``), builds the indexes concurrently and, for a
   NOT NULL column, proves it with a validated ``CHECK (new IS NOT NULL)``
   (:func:`validate_not_null`) so that the contract's ``SET NOT NULL`` needs no
   table scan;
2. the **contract** revision (``post_deploy = True``, run by the post-deploy
   Job when no pod of the previous image is left) drops the trigger
   (:func:`unsync_renamed_column`), then the old column.

Every expand step runs outside the revision's transaction, as the batched copy
must (each batch commits on its own), and each is idempotent: a pod killed in
the middle of a long copy leaves a database on which the same revision simply
runs again. On SQLite (``make run``) the same steps run with SQLite triggers
(AFTER INSERT/UPDATE, which rewrite the row: SQLite has no BEFORE trigger that
can set a value). Inside a caller's own transaction they run in it.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager, nullcontext

import sqlalchemy as sa
from alembic import op
from sqlalchemy import inspect

from safe_migrations.log import log
from safe_migrations.operations import constraint_exists, plain_operations

# PostgreSQL's identifier limit (NAMEDATALEN - 1).
_MAX_NAME = 63


def sync_name(table: str, old: str, new: str) -> str:
    """The trigger (and trigger function) name for renaming ``table.old`` to ``new``."""
    name = f"sync_{table}_{old}_{new}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[: _MAX_NAME - 9]}_{digest}"


def not_null_check_name(table: str, column: str) -> str:
    """The CHECK constraint that proves ``column`` NOT NULL (``ck_`` prefix of the naming convention)."""
    return f"ck_{table}_{column}_not_null"[:_MAX_NAME]


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def _own_transactions() -> AbstractContextManager[object]:
    """Outside the revision's transaction (each statement commits), unless SQLite or a caller's transaction."""
    if plain_operations():
        return nullcontext()
    return op.get_context().autocommit_block()


def _online() -> bool:
    return not op.get_context().as_sql


def add_column_once(table: str, column: sa.Column) -> None:
    """``op.add_column(table, column)``, skipped when the column is already there (a rerun)."""
    with _own_transactions():
        if _postgresql():
            op.add_column(table, column, if_not_exists=True)
        elif not _online() or column.name not in {c["name"] for c in inspect(op.get_bind()).get_columns(table)}:
            op.add_column(table, column)


def _postgresql_sync(table: str, old: str, new: str) -> list[str]:
    name = sync_name(table, old, new)
    return [
        f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Keeps {table}.{old} and {table}.{new} equal while both exist (rename {old} -> {new}).
    IF TG_OP = 'INSERT' THEN
        IF NEW.{new} IS NULL THEN NEW.{new} := NEW.{old}; ELSE NEW.{old} := NEW.{new}; END IF;
    ELSIF NEW.{new} IS DISTINCT FROM OLD.{new} THEN
        NEW.{old} := NEW.{new};
    ELSE
        NEW.{new} := NEW.{old};
    END IF;
    RETURN NEW;
END
$$""",
        f"CREATE OR REPLACE TRIGGER {name} BEFORE INSERT OR UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()",
    ]


def _sqlite_triggers(table: str, old: str, new: str) -> dict[str, str]:
    name = sync_name(table, old, new)
    # Recursive triggers are off by default in SQLite: the UPDATE inside does not fire them again.
    inserted = f"CASE WHEN NEW.{new} IS NULL THEN NEW.{old} ELSE NEW.{new} END"
    updated = f"CASE WHEN NEW.{new} IS NOT OLD.{new} THEN NEW.{new} ELSE NEW.{old} END"
    return {
        f"{name}_insert": f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} FOR EACH ROW BEGIN "
        f"UPDATE {table} SET {old} = {inserted}, {new} = {inserted} WHERE rowid = NEW.rowid; END",
        f"{name}_update": f"CREATE TRIGGER {name}_update AFTER UPDATE ON {table} FOR EACH ROW BEGIN "
        f"UPDATE {table} SET {old} = {updated}, {new} = {updated} WHERE rowid = NEW.rowid; END",
    }


def sync_renamed_column(table: str, old: str, new: str) -> None:
    """A trigger keeping ``table.old`` and ``table.new`` equal on INSERT and UPDATE, whichever one was written.

    On INSERT a value given for ``new`` wins, else ``old``'s is copied; on
    UPDATE a changed ``new`` is copied to ``old``, else ``old`` to ``new``.
    """
    with _own_transactions():
        if _postgresql():
            for statement in _postgresql_sync(table, old, new):
                op.execute(statement)
            return
        for name, statement in _sqlite_triggers(table, old, new).items():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            op.execute(statement)


def unsync_renamed_column(table: str, old: str, new: str) -> None:
    """Drop what :func:`sync_renamed_column` created (nothing else; no data)."""
    name = sync_name(table, old, new)
    if _postgresql():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        return
    for trigger in _sqlite_triggers(table, old, new):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")


def validate_not_null(table: str, column: str) -> None:
    """Prove ``column`` holds no NULL with a validated CHECK, without blocking writers (PostgreSQL).

    ``ADD CONSTRAINT ... NOT VALID`` takes its lock for an instant;
    ``VALIDATE CONSTRAINT`` scans under a lock that lets reads and writes
    through. ``SET NOT NULL`` (in the contract) then uses the proof instead of
    scanning the table under an exclusive lock. SQLite has nothing to prove it
    with: the contract's ``SET NOT NULL`` rebuilds the table there.
    """
    if not _postgresql():
        log.info("%s.%s: NOT NULL is proven by the contract revision on SQLite", table, column)
        return
    name = not_null_check_name(table, column)
    with _own_transactions():
        if not _online() or not constraint_exists(name):
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({column} IS NOT NULL) NOT VALID")
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


def drop_not_null_check(table: str, column: str) -> None:
    """Drop the CHECK of :func:`validate_not_null` (the column's NOT NULL now says the same)."""
    if _postgresql():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {not_null_check_name(table, column)}")
