"""One check interface: a check is written once and used by lint, the gates and the doctor.

A *revision check* reads one revision file (its steps, see
:mod:`safe_migrations.steps`, and its markers) and returns the problems it
finds. ``flask db lint`` runs every check on the revisions it lints (and the
doctor reports lint's result); the migration runtime runs the checks declared
``gate=True`` on the revisions a command is about to apply and refuses the
command, on every path (entrypoint, ``flask db``, Alembic's Python API).

Adding a check is one decorated function::

    @revision_check("contract-not-post-deploy", fix="mark the revision post_deploy = True")
    def contract_not_post_deploy(revision: Revision) -> list[str]:
        if revision.marker("post_deploy") is True:
            return []
        return [f"{step.describe()} removes what the previous image uses" for step in revision.upgrade if step.contract]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from alembic.script import Script

from safe_migrations import steps as step_kinds
from safe_migrations.findings import Finding
from safe_migrations.steps import Step


class Revision:
    """What checks look at: one revision file, its steps parsed once."""

    def __init__(self, revision: str, path: str | Path, down_revisions: tuple[str, ...] = ()) -> None:
        self.revision = revision
        self.path = Path(path)
        self.filename = self.path.name
        self.down_revisions = down_revisions

    @classmethod
    def from_script(cls, script: Script) -> Revision:
        """The revision of an Alembic :class:`~alembic.script.Script`."""
        parents = script.down_revision
        down = tuple(parents) if isinstance(parents, tuple | list) else ((parents,) if parents else ())
        return cls(script.revision, script.path, down)

    @cached_property
    def upgrade(self) -> list[Step]:
        """The steps of ``upgrade()``."""
        return step_kinds.steps(self.path, "upgrade")

    @cached_property
    def downgrade(self) -> list[Step]:
        """The steps of ``downgrade()``."""
        return step_kinds.steps(self.path, "downgrade")

    def marker(self, name: str) -> object | None:
        """A module-level marker such as ``reviewed_destructive`` or ``post_deploy``."""
        return step_kinds.marker(self.path, name)


CheckFunction = Callable[[Revision], list[str]]


@dataclass(frozen=True)
class RevisionCheck:
    """A registered check: its rule name, the fix it suggests, and whether it gates applying."""

    rule: str
    fix: str
    gate: bool
    function: CheckFunction

    def run(self, revision: Revision) -> list[Finding]:
        """The problems this check finds in ``revision``."""
        return [
            Finding(self.rule, message, self.fix, revision.revision, filename=revision.filename)
            for message in self.function(revision)
        ]


CHECKS: list[RevisionCheck] = []


def revision_check(rule: str, *, fix: str, gate: bool = False) -> Callable[[CheckFunction], CheckFunction]:
    """Register a revision check (see the module docstring)."""

    def register(function: CheckFunction) -> CheckFunction:
        CHECKS[:] = [check for check in CHECKS if check.rule != rule]
        CHECKS.append(RevisionCheck(rule, fix, gate, function))
        return function

    return register


def problems(revision: Revision, *, gates_only: bool = False) -> list[Finding]:
    """Every problem of ``revision`` (only the gating checks' with ``gates_only``)."""
    return [problem for check in CHECKS if check.gate or not gates_only for problem in check.run(revision)]


# --- the checks -----------------------------------------------------------------------

DESTRUCTIVE_FIX = 'run `flask db backup`, then add reviewed_destructive = "<reason>" to the revision'


@revision_check("destructive-operation", fix=DESTRUCTIVE_FIX, gate=True)
def unreviewed_destructive(revision: Revision) -> list[str]:
    """A step that destroys data needs a written reason (``reviewed_destructive``)."""
    if step_kinds.reviewed_destructive(revision.path):
        return []
    return [
        f"{step.describe()} destroys data ({step.why}) and needs a reviewed_destructive marker"
        for step in revision.upgrade
        if step.destructive
    ]


@revision_check(
    "concurrent-beside-transactional",
    fix="move the concurrent step into a revision of its own (concurrent steps may share one; nothing else)",
)
def concurrent_beside_transactional(revision: Revision) -> list[str]:
    """A concurrent step commits the revision's transaction; other DDL beside it could be left half-applied."""
    concurrent = [step for step in revision.upgrade if step.concurrent]
    others = [step for step in revision.upgrade if not step.concurrent]
    if not concurrent or not others:
        return []
    return [
        f"{concurrent[0].describe()} runs outside the transaction, beside transactional "
        f"{', '.join(step.describe() for step in others)}: a later failure would leave part of it applied"
    ]


CONTRACT_FIX = (
    "mark the revision post_deploy = True (./init_migration.sh --post-deploy writes one): pod start-up then "
    "leaves it for the post-deploy job, run after the rollout; or split it: expand now, contract later"
)


@revision_check("contract-not-post-deploy", fix=CONTRACT_FIX)
def contract_not_post_deploy(revision: Revision) -> list[str]:
    """A contract step run at pod start-up breaks the previous image's pods, still serving mid-rollout."""
    if revision.marker("post_deploy") is True:
        return []
    return [
        f"{step.describe()} is a contract step that is not post-deploy: pods of the previous image still use "
        "it during a rolling update"
        for step in revision.upgrade
        if step.contract
    ]


@revision_check(
    "unique-index-concurrently-by-hand",
    fix="use safe_migrations.operations.create_index_concurrently(NAME, TABLE, COLUMNS, unique=True): it runs "
    "outside the transaction for you, and the toolset drops an INVALID leftover before building it again",
)
def unique_index_concurrently_by_hand(revision: Revision) -> list[str]:
    """A unique index built concurrently by hand fails on duplicates and leaves an INVALID index behind."""
    return [
        f"{step.describe()} builds a unique index concurrently by hand: a failed build leaves an INVALID index "
        "that enforces nothing"
        for step in revision.upgrade
        if step.operation == "create_index" and step.concurrent and step.unique
    ]
