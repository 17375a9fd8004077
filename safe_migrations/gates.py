"""The gates every writing command passes before anything runs, on every path.

The migration runtime (``migrations/env.py``) calls them for the entrypoint,
``flask db upgrade/downgrade/stamp`` and Alembic's Python command API alike:

- edited history: an applied revision whose file changed is refused
  (``flask db repair REVISION`` accepts an edit that leaves its SQL unchanged);
- the gating revision checks of :mod:`safe_migrations.checks` (an unreviewed
  destructive step, ...) on every revision an upgrade is about to apply;
- data loss on downgrade: dropping a table with rows or a column with values
  needs a confirmation (a terminal prompt, or ``--yes``).

A refusal is one line naming the revision and the step; nothing is applied.
"""

from __future__ import annotations

import sys

import click
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from safe_migrations import checks
from safe_migrations.backup import backup_advice
from safe_migrations.history import changed_revisions
from safe_migrations.log import log
from safe_migrations.plan import Kind, Plan
from safe_migrations.scripts import shown_path
from safe_migrations.settings import MigrationSettings
from safe_migrations.steps import reviewed_destructive


class MigrationRefused(RuntimeError):
    """A gate refused the command; the message is one line, nothing was applied."""


def refuse_edited_history(connection: Connection, script: ScriptDirectory, settings: MigrationSettings) -> None:
    """Refuse when an applied revision's file changed since it ran (unless MIGRATION_ALLOW_CHANGED=1)."""
    changed = changed_revisions(connection, script)
    if not changed:
        return
    names = ", ".join(f"{c.revision} ({c.filename})" for c in changed)
    paths = " ".join(shown_path(script.get_revision(c.revision).path) for c in changed)
    if settings.allow_changed:
        log.warning("applied migration files were edited after they ran: %s (MIGRATION_ALLOW_CHANGED=1)", names)
        return
    raise MigrationRefused(
        f"applied migration files were edited after they ran: {names}; restore them (`git checkout -- {paths}`, "
        "or, never committed, `flask db repair REVISION --restore` writes back the source the ledger kept) "
        "and put the change in a new revision, or, if only comments or the docstring changed, "
        "`flask db repair REVISION` (MIGRATION_ALLOW_CHANGED=1 overrides in an emergency)"
    )


def refuse_failed_checks(plan: Plan, stays_at: str) -> None:
    """Refuse an upgrade that would apply a revision a gating check rejects."""
    if plan.kind is not Kind.UPGRADE:
        return
    for script in plan.scripts:
        revision = checks.Revision.from_script(script)
        found = checks.problems(revision, gates_only=True)
        if found:
            problem = found[0]
            raise MigrationRefused(
                f"refusing revision {problem.revision} ({problem.filename}): {problem.message}; "
                f"{problem.fix}; nothing was applied, the database stays at {stays_at}"
            )
        reason = reviewed_destructive(script.path)
        if reason and any(step.destructive for step in revision.upgrade):
            log.warning("revision %s is destructive, reviewed: %s", script.revision, reason)


def _has_data(connection: Connection, table: str, column: str | None) -> bool:
    quote = connection.dialect.identifier_preparer.quote
    if not inspect(connection).has_table(table):
        return False
    if column is not None:
        columns = {c["name"] for c in inspect(connection).get_columns(table)}
        if column not in columns:
            return False
    where = f" WHERE {quote(column)} IS NOT NULL" if column else ""
    return connection.execute(text(f"SELECT 1 FROM {quote(table)}{where} LIMIT 1")).first() is not None


def data_a_downgrade_destroys(connection: Connection, plan: Plan) -> list[str]:
    """``table market (has rows)``/``column market.address (has values)`` for each drop with data."""
    found = []
    for script in plan.scripts:
        for step in checks.Revision.from_script(script).downgrade:
            if step.operation not in {"drop_table", "drop_column"} or not step.target:
                continue
            table, _, column = step.target.partition(".")
            if _has_data(connection, table, column or None):
                what = f"column {step.target} (has values)" if column else f"table {table} (has rows)"
                found.append(f"{what} in {script.revision}")
    return found


def confirm_data_loss(connection: Connection, plan: Plan, *, confirmed: bool, stays_at: str) -> None:
    """A downgrade that drops data asks on a terminal; without one it needs ``--yes``."""
    if plan.kind is not Kind.DOWNGRADE:
        return
    lost = data_a_downgrade_destroys(connection, plan)
    if not lost or confirmed:
        if lost:
            log.warning("downgrade destroys data, confirmed: %s", "; ".join(lost))
        return
    what = "; ".join(lost)
    if sys.stdin is not None and sys.stdin.isatty():
        if click.confirm(f"database migration: downgrade to {plan.destination} destroys {what}. Continue?"):
            return
        raise MigrationRefused(f"downgrade not confirmed; nothing was reverted, the database stays at {stays_at}")
    raise MigrationRefused(
        f"downgrade to {plan.destination} would destroy {what}; {backup_advice(connection.engine.url)}, "
        f"then repeat with --yes (no terminal to ask on); nothing was reverted, the database stays at {stays_at}"
    )
