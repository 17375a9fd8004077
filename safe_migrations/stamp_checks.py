"""``flask db stamp`` under the same care as ``flask db baseline``.

A stamp rewrites ``alembic_version`` without running anything, so it can make
the bookkeeping disagree with the database in three ways, each refused
(unless confirmed: ``flask db stamp --yes``, ``-x confirm_stamp=yes`` or
``config.attributes["confirm_stamp"] = True``) with one line saying what
would happen:

- **below what the ledger records as applied**: the next upgrade (and pod
  start-up) runs those revisions a second time, a data migration's UPDATE included;
- **below the schema that is there**: what the revisions left to apply create
  exists already, so every upgrade fails with "already exists" and pods crash-loop;
- **above the schema that is there**: revisions marked applied without running
  leave their tables or columns missing, and every query on them fails.

What a revision creates is read from its steps (:mod:`safe_migrations.steps`):
tables and columns, net of those a later revision of the same walk drops.
"""

from __future__ import annotations

from alembic.script import Script, ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from safe_migrations import ledger
from safe_migrations import post_deploy as contract
from safe_migrations.steps import steps

CONFIRM_STAMP = "confirm_stamp"


def created(revisions: list[Script]) -> dict[str, str]:
    """``table`` / ``table.column`` -> revision, for what ``revisions`` (oldest first) create and keep."""
    made: dict[str, str] = {}
    for revision in revisions:
        for step in steps(revision.path):
            if step.operation in ("create_table", "add_column") and step.target:
                made[step.target] = revision.revision
            elif step.operation == "drop_table":
                made = {name: rev for name, rev in made.items() if name.split(".")[0] != step.target}
            elif step.operation == "drop_column":
                made.pop(step.target, None)
    return made


def _present(connection: Connection, names: dict[str, str]) -> set[str]:
    """Which of the tables and ``table.column`` names exist in the database."""
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    found = {name for name in names if "." not in name and name in tables}
    for table in {name.split(".")[0] for name in names if "." in name} & tables:
        found |= {f"{table}.{column['name']}" for column in inspector.get_columns(table)} & set(names)
    return found


def _listed(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def stamp_problem(
    connection: Connection, script: ScriptDirectory, current: tuple[str, ...], target: tuple[str, ...], label: str
) -> str | None:
    """What stamping ``target`` (as the user wrote it: ``label``) would break, in one line; None if nothing."""
    before = contract.applied(script, current)
    after = contract.applied(script, target)
    order = contract.oldest_first(script)
    unmarked = [rev for rev in order if rev.revision in before - after]
    recorded = [rev.revision for rev in unmarked if rev.revision in ledger.recorded_as_applied(connection, before)]
    if recorded:
        return (
            f"stamping {label} would mark {_listed(recorded)} as not applied, but the ledger records "
            "them as applied: the next upgrade (and pod start-up) would run them a second time, data migrations "
            f"included; to revert them, run `flask db downgrade {label}` instead"
        )
    left = [rev for rev in order if rev.revision not in after]
    there = sorted(_present(connection, created(left)))
    if there:
        return (
            f"stamping {label} would leave {_listed([rev.revision for rev in left])} to apply, but what they create "
            f'is already there ({_listed(there)}): every upgrade (and pod start-up) would fail with "already '
            'exists"; stamp the revision the schema is at (`flask db baseline` checks a database against the head)'
        )
    marked = [rev for rev in order if rev.revision in after - before]
    wanted = created(marked)
    missing = sorted(set(wanted) - _present(connection, wanted))
    if missing:
        return (
            f"stamping {label} would mark {_listed([rev.revision for rev in marked])} as applied without running "
            f"them, but what they create is missing ({_listed(missing)}): every query on it would fail; run "
            f"`flask db upgrade {label}` instead (it runs them)"
        )
    return None
