"""The gates every writing command passes before anything runs, on every path.

The migration runtime (``migrations/env.py``) calls them for the entrypoint,
``flask db upgrade/downgrade/stamp`` and Alembic's Python command API alike:

- edited history: an applied revision whose file changed is refused
  (``flask db repair REVISION`` accepts an edit that leaves its code unchanged);
- the gating revision checks of :mod:`safe_migrations.checks` (an unreviewed
  destructive step, ...) on every revision an upgrade is about to apply;
- data loss on downgrade: dropping a table with rows or a column with values
  needs a confirmation (a terminal prompt, or ``--yes``);
- what actually runs: :class:`StatementGates`, a listener of the statement
  observer (:mod:`safe_migrations.observer`), judges every statement a
  revision executes, however it was written, by the one classification
  (:mod:`safe_migrations.statements`): in an upgrade a destructive statement
  needs ``reviewed_destructive`` and a contract statement ``post_deploy = True``
  (or ``reviewed_contract = "why"``); in a downgrade a statement that would
  destroy rows needs a confirmation naming the table and its row count.

A refusal is one line naming the revision and the step; the revision's
transaction rolls back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from safe_migrations import checks
from safe_migrations.backup import backup_advice
from safe_migrations.findings import Finding, MigrationRefused
from safe_migrations.history import MISSING_LEDGER, MISSING_LEDGER_FIX, changed_revisions, ledger_missing
from safe_migrations.log import log
from safe_migrations.observer import Observed
from safe_migrations.plan import Kind, Plan
from safe_migrations.scripts import shown_path
from safe_migrations.settings import MigrationSettings
from safe_migrations.statements import CONTRACT_MARKERS, DESTRUCTIVE_MARKER, RULES, Effect
from safe_migrations.statements import Kind as Danger

__all__ = ["MigrationRefused", "StatementGates", "StatementRefused"]


def refuse_edited_history(connection: Connection, script: ScriptDirectory, settings: MigrationSettings) -> None:
    """Refuse when an applied revision's file changed since it ran (unless MIGRATION_ALLOW_CHANGED=1),
    or when the ledger that would tell is missing."""
    if ledger_missing(connection):
        raise MigrationRefused(f"{MISSING_LEDGER}; {MISSING_LEDGER_FIX}")
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


def confirm_data_loss(connection: Connection, plan: Plan, *, confirmed: bool, stays_at: str) -> bool:
    """A downgrade that drops data asks on a terminal; without one it needs ``--yes``.

    True when the person confirmed (``--yes`` or the prompt): the statement
    gates then do not ask again for the same downgrade.
    """
    if plan.kind is not Kind.DOWNGRADE:
        return confirmed
    lost = data_a_downgrade_destroys(connection, plan)
    if not lost or confirmed:
        if lost:
            log.warning("downgrade destroys data, confirmed: %s", "; ".join(lost))
        return confirmed
    what = "; ".join(lost)
    if sys.stdin is not None and sys.stdin.isatty():
        if click.confirm(f"database migration: downgrade to {plan.destination} destroys {what}. Continue?"):
            return True
        raise MigrationRefused(f"downgrade not confirmed; nothing was reverted, the database stays at {stays_at}")
    raise MigrationRefused(
        f"downgrade to {plan.destination} would destroy {what}; {backup_advice(connection.engine.url)}, "
        f"then repeat with --yes (no terminal to ask on); nothing was reverted, the database stays at {stays_at}"
    )


# --- what runs ------------------------------------------------------------------------------


class StatementRefused(MigrationRefused):
    """A statement was refused before it ran; the runtime adds where the database stays."""


def _quote(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def _side_query(observed: Observed, sql: str, parameters: tuple = ()) -> list[tuple]:
    """Run ``sql`` in the migration's session, unobserved, inside a savepoint (a failure changes nothing)."""
    assert observed.cursor is not None  # online only (see StatementGates._downgrade)
    cursor = observed.cursor.connection.cursor()
    try:
        cursor.execute("SAVEPOINT safe_migrations_count")
        try:
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
        except Exception:
            cursor.execute("ROLLBACK TO SAVEPOINT safe_migrations_count")
            raise
        cursor.execute("RELEASE SAVEPOINT safe_migrations_count")
        return rows
    finally:
        cursor.close()


def _counted(observed: Observed, table: str, condition: str = "") -> int:
    (exists,) = _side_query(observed, "SELECT to_regclass(%s) IS NOT NULL", (table,))[0]
    if not exists:
        return 0
    where = f" WHERE {condition}" if condition else ""
    return int(_side_query(observed, f"SELECT count(*) FROM {_quote(table)}{where}")[0][0])


def rows_destroyed(observed: Observed, effect: Effect) -> list[tuple[str, int | None]]:
    """``[(table, rows)]`` an effect would destroy now; rows None when they cannot be counted."""
    try:
        if effect.rule in {"drop_table", "truncate"} and effect.table:
            return [(effect.table, _counted(observed, effect.table))]
        if effect.rule == "delete" and effect.table:
            return [(effect.table, _counted(observed, effect.table, effect.where or ""))]
        if effect.rule in {"drop_column", "lossy_type_change"} and effect.table and effect.column:
            present = _side_query(
                observed,
                "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped",
                (effect.table, effect.column),
            )
            if not present:
                return [(effect.table, 0)]
            return [
                (
                    f"{effect.table}.{effect.column}",
                    _counted(observed, effect.table, f"{_quote(effect.column)} IS NOT NULL"),
                )
            ]
        if effect.rule == "drop_type" and effect.name:
            columns = _side_query(
                observed,
                "SELECT attrelid::regclass::text, attname FROM pg_attribute "
                "WHERE atttypid = to_regtype(%s) AND attnum > 0 AND NOT attisdropped",
                (effect.name,),
            )
            return [
                (f"{table}.{column}", _counted(observed, table, f"{_quote(column)} IS NOT NULL"))
                for table, column in columns
            ]
        if effect.rule == "drop_schema" and effect.name:
            tables = _side_query(
                observed,
                "SELECT oid::regclass::text FROM pg_class WHERE relnamespace = to_regnamespace(%s) "
                "AND relkind IN ('r', 'p')",
                (effect.name,),
            )
            return [(table, _counted(observed, table)) for (table,) in tables]
        if effect.rule == "dynamic_sql":
            return [("(dynamic SQL)", None)]
    except Exception:  # a condition that needs the statement's own parameters, ...: ask, do not guess
        return [(effect.table or effect.name or "?", None)]
    return []


class StatementGates:
    """The gates on each statement a revision runs (a listener of the statement observer)."""

    def __init__(self, *, confirmed: Callable[[], bool], collect: list[Finding] | None = None) -> None:
        # Asked only when a statement would destroy rows; ``--yes`` or a terminal prompt.
        self.confirmed = confirmed
        # Lint renders every revision to report on it: there a refusal is collected, not raised.
        self.collect = collect

    def before(self, observed: Observed) -> None:
        statement, revision = observed.statement, observed.revision
        if not revision.upgrade:
            self._downgrade(observed)
            return
        if not statement.effects:
            return
        destructive = statement.first(Danger.DESTRUCTIVE)
        refusals = []
        if destructive is not None and not revision.reason(DESTRUCTIVE_MARKER):
            refusals.append(
                self._refusal(
                    observed,
                    destructive,
                    "destructive",
                    f'run `flask db backup`, then add {DESTRUCTIVE_MARKER} = "<reason>" to the revision',
                )
            )
        contract = statement.first(Danger.CONTRACT)
        if contract is not None and not (revision.post_deploy or revision.reason("reviewed_contract")):
            refusals.append(
                self._refusal(
                    observed,
                    contract,
                    "contract",
                    f"mark the revision {CONTRACT_MARKERS[0]} = True (it then runs after the rollout), or write "
                    f'{CONTRACT_MARKERS[1]} = "<why the previous image does not use it>"',
                )
            )
        if refusals and self.collect is None:
            raise refusals[0]
        if refusals and self.collect is not None:
            self.collect.extend(refusal.finding for refusal in refusals if refusal.finding)
            return
        if destructive is not None:
            log.warning(
                "revision %s is destructive, reviewed: %s (`%s`)",
                revision.revision,
                revision.reason(DESTRUCTIVE_MARKER),
                statement.describe(),
            )

    def after(self, observed: Observed) -> None:
        return None

    def _refusal(self, observed: Observed, effect: Effect, code: str, fix: str) -> StatementRefused:
        revision = observed.revision
        what = effect.table or effect.name
        where = f" ({what})" if what else ""
        finding = Finding(
            code=code,
            revision=revision.revision,
            statement=observed.statement.describe(),
            message=f"{code} statement{where}: {RULES[effect.rule].why}",
            fix=fix,
            filename=revision.filename,
        )
        return StatementRefused(
            f"refusing revision {revision.revision} ({revision.filename}): {code} `{finding.statement}`"
            f"{where} {RULES[effect.rule].why}; {fix}",
            finding,
        )

    def _downgrade(self, observed: Observed) -> None:
        if observed.cursor is None:
            return  # offline: rendering the SQL destroys nothing; whoever runs it decides
        if observed.execution and observed.statement is not observed.execution[0]:
            return  # the first statement of a multi-statement string asked for all of them
        lost = [
            f"{table} ({'unknown' if rows is None else rows} rows) by `{statement.describe(80)}`"
            for statement in observed.execution or (observed.statement,)
            for effect in statement.effects
            if Danger.DESTRUCTIVE in effect.kinds
            for table, rows in rows_destroyed(observed, effect)
            if rows != 0
        ]
        if not lost:
            return
        what, revision = "; ".join(lost), observed.revision.revision
        if self.confirmed():
            log.warning("downgrade of %s destroys %s, confirmed", revision, what)
            return
        if sys.stdin is not None and sys.stdin.isatty():
            if click.confirm(f"database migration: downgrade of {revision} destroys {what}. Continue?"):
                return
            raise StatementRefused(f"downgrade of {revision} not confirmed")
        raise StatementRefused(
            f"downgrade of {revision} would destroy {what}; run `flask db backup` first, then repeat with --yes "
            "(no terminal to ask on)",
            Finding("destroys-rows", f"would destroy {what}", "--yes after `flask db backup`", revision),
        )
