"""What the running Alembic command is about to do, on Alembic's public API.

``env.py`` runs for every command (upgrade, downgrade, stamp, current, check,
revision --autogenerate, ...). The runtime needs to know, *before* anything
runs, whether the command writes (then it takes the lock and keeps the ledger)
and which revision scripts it would run (the gates read them).

Alembic has no public "which command is this" call, so the kind is read from
the options a command passes to its environment, which the configured
:class:`~alembic.runtime.migration.MigrationContext` exposes as its public
``opts``: upgrade and downgrade pass a destination revision, stamp passes a
destination and ``purge``, read-only commands pass no destination. This reading lives here and only here;
``tests/test_plan.py`` runs every Alembic command and fails if it changes.
Upgrade versus downgrade is decided from the destination and the database's
heads, and the plan itself comes from ``ScriptDirectory.iterate_revisions``,
exactly the traversal Alembic's own commands use.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory


class Kind(Enum):
    """What a command does to the schema."""

    READ = "read"  # current, check, revision --autogenerate, history
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    STAMP = "stamp"

    @property
    def writes(self) -> bool:
        """True when the command changes ``alembic_version`` (and so takes the lock)."""
        return self is not Kind.READ


_DOWNGRADE_SYNTAX = re.compile(r"^(?:base|-\d+|.+-\d+)$")
_UPGRADE_SYNTAX = re.compile(r"^(?:heads?|\+\d+|.+\+\d+)$")


def writes(context: MigrationContext) -> bool:
    """True for upgrade, downgrade and stamp: the commands that take the lock and keep the ledger."""
    return "destination_rev" in context.opts


def command_kind(context: MigrationContext, heads: tuple[str, ...]) -> Kind:
    """Upgrade, downgrade, stamp or read-only, for a database at ``heads`` (see the module docstring)."""
    options = context.opts
    if not writes(context):
        return Kind.READ
    if "purge" in options:
        return Kind.STAMP
    target = destination(context)
    if _DOWNGRADE_SYNTAX.match(target):
        return Kind.DOWNGRADE
    if _UPGRADE_SYNTAX.match(target):
        return Kind.UPGRADE
    if context.script is None:
        return Kind.UPGRADE
    return Kind.DOWNGRADE if is_downgrade_of(context.script, target, heads) else Kind.UPGRADE


def destination(context: MigrationContext) -> str:
    """The destination as the user wrote it (``head``, ``+1``, ``-1``, ``base``, a revision id)."""
    raw = context.opts.get("destination_rev")
    if isinstance(raw, tuple | list):
        return ",".join(str(r) for r in raw) or "base"
    return str(raw) if raw is not None else "base"


@dataclass
class Plan:
    """The scripts the command would run, in order (empty for stamp and read-only commands)."""

    kind: Kind
    destination: str
    scripts: list[Script] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not self.scripts


def plan(kind: Kind, target: str, script: ScriptDirectory, heads: tuple[str, ...]) -> Plan:
    """The scripts ``kind`` to ``target`` would run from ``heads``, as Alembic's commands traverse them."""
    if kind is Kind.UPGRADE:
        found = script.iterate_revisions(target, heads or None, implicit_base=True)
        return Plan(kind, target, list(reversed(list(found))))
    if kind is Kind.DOWNGRADE:
        found = script.iterate_revisions(heads or None, None if target == "base" else target, select_for_downgrade=True)
        return Plan(kind, target, list(found))
    return Plan(kind, target)


def is_downgrade_of(script: ScriptDirectory, target: str, heads: tuple[str, ...]) -> bool:
    """True when the explicit revision ``target`` lies below the database's ``heads``."""
    if not heads or target in heads:
        return False
    try:
        below = {rev.revision for rev in script.iterate_revisions(heads, "base")}
    except Exception:  # an unlocatable head: Alembic's own error will say so
        return False
    base = target.split("@")[-1]
    return any(rev.startswith(base) for rev in below)
