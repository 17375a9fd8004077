"""``flask db migrate`` notices a probable rename and writes it as expand + contract.

Autogenerate sees a renamed model attribute as a dropped column and an added
one: applied as such, the column's values are deleted, and the previous image
(still serving during a rolling update) fails on the column it still names.
When one table of the diff drops a column and adds one of the same type, this
module makes someone decide:

- ``--rename TABLE.OLD:NEW`` (repeatable): the pair becomes two revisions (the
  steps are in :mod:`safe_migrations.rename_steps`):

  1. an ordinary **expand** revision, applied at pod start-up: the new column
     (nullable, no default yet), a trigger keeping both columns equal whichever
     one a writer set, the existing rows copied in committed batches, the new
     column's indexes built concurrently, its NOT NULL proven by a validated
     CHECK; its downgrade removes all of that;
  2. a ``post_deploy = True`` **contract** revision, run by the post-deploy Job
     after the rollout: the trigger and its function dropped, then the old
     column's indexes and the old column (``reviewed_destructive`` says why no
     value is lost), then NOT NULL and the default on the new column; its
     downgrade brings the old column back, synced and copied.

  The new column's indexes, UNIQUE constraints and foreign keys are built in
  the expand without blocking writers (concurrently, ``USING INDEX``, ``NOT
  VALID`` then ``VALIDATE``), the old ones dropped in the contract; their names
  come from the models' naming convention (autogenerate's own ops for the new
  column). An index or constraint that would keep its name is refused (the
  expand builds the new one beside the old one). CHECK constraints are not
  compared by Alembic: one on the old column goes with it. The model already
  uses the new name.
- ``--no-rename``: the add + drop stay as they are (and the drop still needs its
  review before anything applies it).
- Neither: on a terminal, the question "Did you rename market.address to
  market.street_address? [y/N]"; without one, no file is written, the command
  exits non-zero and prints both commands.

"Same type" means the same SQL type on the database autogenerate compares
with, so that the trigger copies every value both ways without a cast.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import click
import sqlalchemy as sa
from alembic.autogenerate import render_op_text, renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError, rev_id
from sqlalchemy.sql.schema import ColumnCollectionConstraint

from safe_migrations.findings import MigrationRefused

# How ``flask db migrate`` hands the decision to env.py: ``-x rename=T.OLD:NEW,...`` / ``-x no_rename=1``.
X_RENAME = "rename"
X_NO_RENAME = "no_rename"
# config.attributes key: {revision id: module-level lines} that script.py.mako writes after the identifiers.
REVISION_MARKERS = "revision_markers"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SPEC = re.compile(rf"^(?P<table>{_NAME})\.(?P<old>{_NAME}):(?P<new>{_NAME})$")
_STEPS = "safe_migrations.rename_steps"
# The general steps the revisions call, in safe_migrations.operations (the rest are in _STEPS).
_OPERATIONS = {
    "batched_update",
    "create_index_concurrently",
    "drop_index_concurrently",
    "create_unique_concurrently",
    "create_foreign_key_not_valid",
    "validate_constraint",
}


class RenameRefused(MigrationRefused):
    """No revision is written: a probable rename nobody decided (both deciding commands are printed), or a
    ``--rename`` the models' diff does not make, or a name the new column cannot take yet."""


@dataclass(frozen=True)
class Rename:
    """``TABLE.OLD:NEW``, as ``--rename`` takes it."""

    table: str
    old: str
    new: str

    @classmethod
    def parse(cls, spec: str) -> Rename:
        """Read ``market.address:street_address``; a malformed spec raises ValueError naming the problem."""
        if len(spec) > 200:
            raise ValueError(f"{spec[:40]!r}...: too long for TABLE.OLD:NEW")
        match = _SPEC.match(spec.strip())
        if not match:
            raise ValueError(f"{spec!r}: expected TABLE.OLD:NEW, e.g. market.address:street_address")
        if match["old"] == match["new"]:
            raise ValueError(f"{spec!r}: the old and the new name are the same")
        return cls(match["table"], match["old"], match["new"])

    def __str__(self) -> str:
        return f"{self.table}.{self.old}:{self.new}"


def x_arguments(renames: Sequence[Rename], no_rename: bool) -> list[str]:
    """The ``-x`` arguments that carry ``--rename``/``--no-rename`` from the CLI to env.py."""
    found = [f"{X_RENAME}={','.join(str(r) for r in renames)}"] if renames else []
    return [*found, f"{X_NO_RENAME}=1"] if no_rename else found


def requested(x_args: dict[str, str]) -> tuple[list[Rename], bool]:
    """The renames and the ``--no-rename`` of a run, read back from its ``-x`` arguments."""
    try:
        renames = [Rename.parse(spec) for spec in x_args.get(X_RENAME, "").split(",") if spec.strip()]
    except ValueError as exc:
        raise CommandError(f"--rename {exc}") from None
    return renames, x_args.get(X_NO_RENAME, "").strip().lower() in {"1", "true", "yes"}


# --------------------------------------------------------------------------- detection


@dataclass
class Candidate:
    """One dropped and one added column of the same type in one table of the diff."""

    table_ops: ops.ModifyTableOps
    dropped: ops.DropColumnOp
    added: ops.AddColumnOp
    sql_type: str

    @property
    def rename(self) -> Rename:
        return Rename(self.table_ops.table_name, self.dropped.column_name, self.added.column.name)

    def question(self) -> str:
        r = self.rename
        return f"Did you rename {r.table}.{r.old} to {r.table}.{r.new}?"


def _sql_type(column: sa.Column, dialect: Any) -> str:
    return column.type.compile(dialect=dialect)


def candidates(upgrade_ops: ops.UpgradeOps, dialect: Any) -> list[Candidate]:
    """Every (dropped, added) column pair of the same SQL type within one table, in diff order."""
    found = []
    for table_ops in upgrade_ops.ops:
        if not isinstance(table_ops, ops.ModifyTableOps):
            continue
        dropped = [o for o in table_ops.ops if isinstance(o, ops.DropColumnOp)]
        added = [o for o in table_ops.ops if isinstance(o, ops.AddColumnOp)]
        for drop in dropped:
            old_type = _sql_type(drop.to_column(), dialect)
            for add in added:
                if _sql_type(add.column, dialect) == old_type:
                    found.append(Candidate(table_ops, drop, add, old_type))
    return found


def _undecided_message(undecided: list[Candidate], message: str | None) -> str:
    quoted = f'"{message}"' if message else '"..."'
    lines = [
        f"{c.rename.table}.{c.rename.old} was removed and {c.rename.table}.{c.rename.new} added ({c.sql_type}): "
        "a rename?"
        for c in undecided
    ]
    renames = " ".join(f"--rename {c.rename}" for c in undecided)
    return "\n".join(
        [
            *lines,
            "No migration file was written. Decide with one of:",
            f"  flask db migrate {renames} -m {quoted}",
            "      (a rename: an expand revision now, a post-deploy contract after the rollout; no value lost)",
            f"  flask db migrate --no-rename -m {quoted}",
            "      (not a rename: add + drop; the drop deletes the column's values and needs its review)",
        ]
    )


def decide(
    found: list[Candidate],
    renames: list[Rename],
    no_rename: bool,
    ask: Callable[[str], bool] | None,
    message: str | None,
) -> list[Candidate]:
    """The candidates to write as renames: those named by ``--rename``, else the answers to ``ask``.

    ``ask`` is None without a terminal: an undecided candidate then raises
    :class:`RenameRefused`. A ``--rename`` that matches no candidate is refused.
    """
    chosen: list[Candidate] = []
    for wanted in renames:
        match = [c for c in found if c.rename == wanted]
        if not match:
            raise RenameRefused(
                f"--rename {wanted}: the models' diff does not remove {wanted.table}.{wanted.old} and add "
                f"{wanted.table}.{wanted.new} of the same type (rename the attribute in models.py, keep its type)"
            )
        chosen.append(match[0])
    if no_rename:
        return chosen
    used = {(c.rename.table, c.rename.old) for c in chosen} | {(c.rename.table, c.rename.new) for c in chosen}
    undecided = [
        c for c in found if (c.rename.table, c.rename.old) not in used and (c.rename.table, c.rename.new) not in used
    ]
    if undecided and ask is None:
        raise RenameRefused(_undecided_message(undecided, message))
    for candidate in undecided:
        r = candidate.rename
        if (r.table, r.old) in used or (r.table, r.new) in used:
            continue
        if ask is not None and ask(candidate.question()):
            chosen.append(candidate)
            used |= {(r.table, r.old), (r.table, r.new)}
    return chosen


def terminal_question() -> Callable[[str], bool] | None:
    """``click.confirm`` (default No) when stdin is a terminal; None without one."""
    if sys.stdin is None or not sys.stdin.isatty():
        return None
    return lambda question: click.confirm(question, default=False)


# --------------------------------------------------------------------------- rendering


@dataclass
class Call(ops.MigrateOperation):
    """A call of a toolset helper in a generated revision, e.g. ``sync_renamed_column("market", ...)``."""

    function: str
    module: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    comment: str | None = None


@dataclass
class AddColumnOnce(ops.MigrateOperation):
    """``add_column_once(table, sa.Column(...))``: the column rendered as autogenerate renders it."""

    add: ops.AddColumnOp


@renderers.dispatch_for(Call)
def _render_call(autogen_context: AutogenContext, call: Call) -> str:
    autogen_context.imports.add(f"from {call.module} import {call.function}")
    arguments = [repr(a) for a in call.args] + [f"{k}={v!r}" for k, v in call.kwargs.items()]
    code = f"{call.function}({', '.join(arguments)})"
    return f"# {call.comment}\n{code}" if call.comment else code


@renderers.dispatch_for(AddColumnOnce)
def _render_add_column_once(autogen_context: AutogenContext, step: AddColumnOnce) -> str:
    autogen_context.imports.add(f"from {_STEPS} import add_column_once")
    text = render_op_text(autogen_context, step.add)
    prefix = "op.add_column("
    if not text.startswith(prefix):  # tests/test_rename.py holds Alembic to this rendering
        raise CommandError(f"unexpected rendering of add_column by Alembic: {text[:60]!r}")
    return "add_column_once(" + text[len(prefix) :]


def _step(function: str, *args: Any, comment: str | None = None, **kwargs: Any) -> Call:
    module = "safe_migrations.operations" if function in _OPERATIONS else _STEPS
    return Call(function, module, args, kwargs, comment)


def _column_names(index: sa.Index) -> list[str] | None:
    names = []
    for column in index.expressions:
        name = column if isinstance(column, str) else getattr(column, "name", None)
        if not isinstance(name, str):
            return None  # an expression index: left to the ordinary ops
        names.append(name)
    return names


def _take_indexes(table_ops: ops.ModifyTableOps, kind: type, column: str) -> list[sa.Index]:
    """Remove from ``table_ops`` the index ops of ``kind`` on ``column``; return their indexes."""
    taken, kept = [], []
    for operation in table_ops.ops:
        index = None
        if isinstance(operation, kind) and isinstance(operation, ops.CreateIndexOp | ops.DropIndexOp):
            index = operation.to_index()  # for a drop: the index autogenerate reflected
        names = _column_names(index) if index is not None else None
        if index is not None and names is not None and column in names:
            taken.append(index)
        else:
            kept.append(operation)
    table_ops.ops[:] = kept
    return taken


def _take_constraints(table_ops: ops.ModifyTableOps, kind: type, column: str, of: type) -> list[Any]:
    """Remove from ``table_ops`` the constraint ops of ``kind`` whose constraint is an ``of`` on ``column``."""
    taken, kept = [], []
    for operation in table_ops.ops:
        constraint = None
        if isinstance(operation, kind) and isinstance(operation, ops.AddConstraintOp | ops.DropConstraintOp):
            constraint = operation.to_constraint()  # for a drop: the constraint autogenerate reflected
        if (
            isinstance(constraint, ColumnCollectionConstraint)
            and isinstance(constraint, of)
            and isinstance(constraint.name, str)
            and column in constraint.columns
        ):
            taken.append(constraint)
        else:
            kept.append(operation)
    table_ops.ops[:] = kept
    return taken


def _create_foreign_key(table: str, key: sa.ForeignKeyConstraint) -> Call:
    options = {k: v for k, v in (("ondelete", key.ondelete), ("onupdate", key.onupdate)) if v}
    referent = key.elements[0].target_fullname.split(".")[0]
    remote = [element.target_fullname.split(".")[-1] for element in key.elements]
    return _step("create_foreign_key_not_valid", key.name, table, referent, list(key.column_keys), remote, **options)


def _create_concurrently(table: str, index: sa.Index) -> Call:
    extra: dict[str, Any] = {"unique": True} if index.unique else {}
    return _step("create_index_concurrently", index.name, table, _column_names(index), **extra)


@dataclass
class RenamePlan:
    """The ops of both revisions for one rename."""

    expand_up: list[ops.MigrateOperation]
    expand_down: list[ops.MigrateOperation]
    contract_up: list[ops.MigrateOperation]
    contract_down: list[ops.MigrateOperation]


def plan(candidate: Candidate) -> RenamePlan:
    """Take ``candidate``'s ops out of its table's diff and write the expand and contract steps instead."""
    table, old, new = candidate.rename.table, candidate.rename.old, candidate.rename.new
    table_ops = candidate.table_ops
    table_ops.ops[:] = [o for o in table_ops.ops if o is not candidate.dropped and o is not candidate.added]
    new_indexes = _take_indexes(table_ops, ops.CreateIndexOp, new)
    old_indexes = _take_indexes(table_ops, ops.DropIndexOp, old)
    new_uniques = [
        (str(c.name), [col.name for col in c.columns])
        for c in _take_constraints(table_ops, ops.AddConstraintOp, new, sa.UniqueConstraint)
    ]
    old_uniques = [
        (str(c.name), [col.name for col in c.columns])
        for c in _take_constraints(table_ops, ops.DropConstraintOp, old, sa.UniqueConstraint)
    ]
    new_keys = _take_constraints(table_ops, ops.AddConstraintOp, new, sa.ForeignKeyConstraint)
    old_keys = _take_constraints(table_ops, ops.DropConstraintOp, old, sa.ForeignKeyConstraint)
    kept = {str(i.name) for i in new_indexes} & {str(i.name) for i in old_indexes}
    kept |= {name for name, _ in new_uniques} & {name for name, _ in old_uniques}
    kept |= {str(k.name) for k in new_keys} & {str(k.name) for k in old_keys}
    if kept:
        raise RenameRefused(
            f"--rename {candidate.rename}: {', '.join(sorted(kept))} covers {table}.{old} and keeps its name for "
            f"{table}.{new}; the expand builds the new one beside the old one, so give it a new name in models.py"
        )
    model, reflected = candidate.added.column, candidate.dropped.to_column()
    new_type, old_type = model.type, reflected.type
    new_not_null, old_not_null = not model.nullable, not reflected.nullable

    # The expand: the new column exists, is synced and filled before the new image serves.
    expand_up: list[ops.MigrateOperation] = [
        AddColumnOnce(ops.AddColumnOp(table, sa.Column(new, new_type, nullable=True))),
        # Before the trigger: on SQLite a new UNIQUE rebuilds the table, and its triggers with it.
        *(_step("create_unique_concurrently", name, table, columns) for name, columns in new_uniques),
        *(_create_foreign_key(table, key) for key in new_keys),
        _step(
            "sync_renamed_column",
            table,
            old,
            new,
            comment=f"until the contract revision, writers of either {old} (previous image) or {new} set both",
        ),
        _step("batched_update", table, f"{new} = {old}", pending=f"{new} IS NULL AND {old} IS NOT NULL"),
        *(_create_concurrently(table, index) for index in new_indexes),
        *(_step("validate_constraint", table, key.name) for key in new_keys),
    ]
    expand_down: list[ops.MigrateOperation] = [
        *(_step("drop_index_concurrently", index.name, table) for index in new_indexes),
        _step("unsync_renamed_column", table, old, new),
        ops.ModifyTableOps(
            table,
            [
                *(ops.DropConstraintOp(name, table, type_="unique") for name, _ in new_uniques),
                *(ops.DropConstraintOp(str(key.name), table, type_="foreignkey") for key in new_keys),
                ops.DropColumnOp(table, new),
            ],
        ),
    ]
    if new_not_null:
        expand_up.append(_step("validate_not_null", table, new))
        expand_down.insert(0, _step("drop_not_null_check", table, new))

    # The contract: nothing writes the old column any more.
    finish: list[ops.MigrateOperation] = [
        *(ops.DropIndexOp(str(index.name), table) for index in old_indexes),
        *(ops.DropConstraintOp(name, table, type_="unique") for name, _ in old_uniques),
        *(ops.DropConstraintOp(str(key.name), table, type_="foreignkey") for key in old_keys),
        ops.DropColumnOp(table, old),
    ]
    if new_not_null:
        finish.append(ops.AlterColumnOp(table, new, existing_type=new_type, modify_nullable=False))
    if model.server_default is not None:
        finish.append(ops.AlterColumnOp(table, new, existing_type=new_type, modify_server_default=model.server_default))
    contract_up: list[ops.MigrateOperation] = [
        _step("unsync_renamed_column", table, old, new),
        ops.ModifyTableOps(table, finish),
    ]
    if new_not_null:
        contract_up.append(_step("drop_not_null_check", table, new))

    # Its downgrade: back to the expand's schema, the old column filled from the new one.
    back = reflected.server_default
    contract_down: list[ops.MigrateOperation] = [
        AddColumnOnce(ops.AddColumnOp(table, sa.Column(old, old_type, nullable=True, server_default=back))),
        *(_step("create_unique_concurrently", name, table, columns) for name, columns in old_uniques),
        *(_create_foreign_key(table, key) for key in old_keys),
        _step("sync_renamed_column", table, old, new),
        _step("batched_update", table, f"{old} = {new}", pending=f"{old} IS NULL AND {new} IS NOT NULL"),
        *(_create_concurrently(table, index) for index in old_indexes),
        *(_step("validate_constraint", table, key.name) for key in old_keys),
    ]
    restore: list[ops.MigrateOperation] = []
    if model.server_default is not None:
        restore.append(ops.AlterColumnOp(table, new, existing_type=new_type, modify_server_default=None))
    if old_not_null:
        contract_down.append(_step("validate_not_null", table, old))
        restore.append(ops.AlterColumnOp(table, old, existing_type=old_type, modify_nullable=False))
    if new_not_null:
        contract_down.append(_step("validate_not_null", table, new))
        restore.append(ops.AlterColumnOp(table, new, existing_type=new_type, modify_nullable=True))
    if restore:
        contract_down.append(ops.ModifyTableOps(table, restore))
        if old_not_null:
            contract_down.append(_step("drop_not_null_check", table, old))
        # SQLite rebuilds the table for these ALTERs, and its triggers go with the old table.
        contract_down.append(_step("sync_renamed_column", table, old, new, comment="again: SQLite rebuilt the table"))
    return RenamePlan(expand_up, expand_down, contract_up, contract_down)


# --------------------------------------------------------------------------- the two revisions


def _flat(steps: list[ops.MigrateOperation]) -> list[ops.MigrateOperation]:
    return [o for step in steps for o in (step.ops if isinstance(step, ops.ModifyTableOps) else [step])]


# squawk rules a generated revision silences, with the reason, when it holds the statement they flag.
_CONSTRAINT_STEPS = {"validate_not_null", "create_unique_concurrently", "create_foreign_key_not_valid"}
_ROBUST = (
    "prefer-robust-stmts -- each constraint step looks its constraint up before adding it (ADD CONSTRAINT "
    "has no IF NOT EXISTS), so a rerun after an interruption skips what is done"
)
_DROP_INDEX = (
    "require-concurrent-index-deletion -- the old column's indexes go in the transaction that drops the "
    "column, which holds the same lock anyway"
)
_DROP_CONSTRAINT = (
    "ban-drop-constraint -- the old column's constraints (the expand added their counterparts on the new "
    "column) and the expand's own NOT NULL proof"
)
_SET_NOT_NULL = (
    "adding-not-nullable-field -- the expand's validated CHECK (column IS NOT NULL) lets PostgreSQL set NOT "
    "NULL without scanning the table"
)


def _expand_silences(steps: list[ops.MigrateOperation]) -> list[str]:
    return [_ROBUST] if any(isinstance(o, Call) and o.function in _CONSTRAINT_STEPS for o in steps) else []


def _contract_silences(steps: list[ops.MigrateOperation]) -> list[str]:
    found = _flat(steps)
    silences = []
    if any(isinstance(o, ops.DropIndexOp) for o in found):
        silences.append(_DROP_INDEX)
    if any(
        isinstance(o, ops.DropConstraintOp) or (isinstance(o, Call) and o.function == "drop_not_null_check")
        for o in found
    ):
        silences.append(_DROP_CONSTRAINT)
    if any(isinstance(o, ops.AlterColumnOp) and o.modify_nullable is False for o in found):
        silences.append(_SET_NOT_NULL)
    return silences


def _contract_markers(renames: list[Rename], expand: str, silences: list[str]) -> str:
    columns = ", ".join(f"{r.table}.{r.old}" for r in renames)
    reason = "; ".join(
        f"{r.table}.{r.old} is renamed to {r.new}: expand revision {expand} copied every value and a trigger "
        "kept both columns equal until this revision"
        for r in renames
    )
    return (
        "\n# The contract of a rename (flask db migrate --rename): the post-deploy job applies it after the\n"
        "# rollout, when no pod of the previous image writes the old column any more.\n"
        "post_deploy = True\n"
        f"reviewed_destructive = {reason!r}\n"
        f"# squawk-ignore: ban-drop-column, ban-drop-function -- {columns}: every value lives on under the new "
        "name; the function dropped is the rename's own trigger function, which no client calls"
        + "".join(f"\n# squawk-ignore: {line}" for line in silences)
    )


def _expand_markers(renames: list[Rename], contract: str, silences: list[str]) -> str:
    what = ", ".join(f"{r.table}.{r.old} -> {r.new}" for r in renames)
    return (
        f"\n# The expand of a rename ({what}): both columns live, kept equal by a trigger, until the\n"
        f"# post-deploy revision {contract} drops the old one after the rollout."
        + "".join(f"\n# squawk-ignore: {line}" for line in silences)
    )


def expand_and_contract(
    migration_context: MigrationContext,
    directives: list[ops.MigrationScript],
    attributes: dict[str, Any],
    x_args: dict[str, str],
    ask: Callable[[str], bool] | None,
) -> ops.MigrationScript | None:
    """Rewrite an autogenerated revision with probable renames (module docstring); return the contract, if any.

    ``directives[0]`` becomes the expand revision; the returned contract
    revision is appended to ``directives`` (the caller places it on the
    post-deploy chain). Raises :class:`RenameRefused` when nobody decided.
    """
    script = directives[0]
    renames, no_rename = requested(x_args)
    upgrade_ops = script.upgrade_ops
    if upgrade_ops is None:
        return None
    chosen = decide(candidates(upgrade_ops, migration_context.dialect), renames, no_rename, ask, script.message)
    if not chosen:
        return None
    plans = [plan(candidate) for candidate in chosen]
    upgrade_ops.ops[:] = [o for o in upgrade_ops.ops if not (isinstance(o, ops.ModifyTableOps) and o.is_empty())]
    downgrade_ops = ops.DowngradeOps([])
    upgrade_ops.reverse_into(downgrade_ops)  # what else changed, reversed as autogenerate does
    for step in plans:
        upgrade_ops.ops.extend(step.expand_up)
    downgrade_ops.ops[:0] = [o for step in reversed(plans) for o in step.expand_down]
    script.downgrade_ops = downgrade_ops
    message = script.message or "Rename " + ", ".join(f"{r.rename.table}.{r.rename.old}" for r in chosen)
    script.message = f"{message} (expand)"
    contract = ops.MigrationScript(
        rev_id=rev_id(),
        upgrade_ops=ops.UpgradeOps([o for step in plans for o in step.contract_up]),
        downgrade_ops=ops.DowngradeOps([o for step in reversed(plans) for o in step.contract_down]),
        message=f"{message} (contract)",
    )
    done = [c.rename for c in chosen]
    markers = attributes.setdefault(REVISION_MARKERS, {})
    expand_steps = [o for step in plans for o in step.expand_up]
    markers[script.rev_id] = _expand_markers(done, contract.rev_id or "", _expand_silences(expand_steps))
    contract_silences = _contract_silences(contract.upgrade_ops.ops if contract.upgrade_ops else [])
    markers[contract.rev_id] = _contract_markers(done, script.rev_id or "", contract_silences)
    directives.append(contract)
    return contract
