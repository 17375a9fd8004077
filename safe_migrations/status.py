"""Where a database stands relative to the migration scripts of this image.

:data:`STATES` is the one table of database states with, for each, the summary,
the cause and the fix. Start-up, the runtime, ``/readyz`` and ``flask db doctor``
all read it, so an operator gets the same words from each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from safe_migrations import ledger
from safe_migrations import post_deploy as contract
from safe_migrations.findings import Finding

AT_HEAD = "at_head"
PENDING = "pending"
# Every ordinary revision applied; post-deploy ones wait for the post-deploy job.
POST_DEPLOY_PENDING = "post_deploy_pending"
AHEAD = "ahead"
UNKNOWN = "unknown_revision"
MULTIPLE_HEADS = "multiple_heads"
NO_HISTORY = "tables_without_history"
STAMPED_EMPTY = "stamped_without_tables"
# alembic_version is below what the ledger records as applied (a stamp back, or a hand edit).
STAMPED_BACKWARDS = "stamped_backwards"
VERSION_TABLE = "alembic_version"
# Tables that say nothing about the application's schema.
_BOOKKEEPING = {VERSION_TABLE, ledger.LEDGER_TABLE}


@dataclass
class SchemaStatus:
    """The database's revision(s) against the image's head(s), with a verdict."""

    state: str
    current: tuple[str, ...]
    heads: tuple[str, ...]
    # Ordinary revisions start-up applies, oldest first, as ``rev (message)``.
    pending: list[str] = field(default_factory=list)
    # Revisions the database has that this image does not ship (ahead/unknown).
    foreign: list[str] = field(default_factory=list)
    # Post-deploy revisions (and anything after one) left for the post-deploy job.
    post_deploy_pending: list[str] = field(default_factory=list)
    # Pending revisions the ledger records as applied (stamped backwards), oldest first.
    recorded: list[str] = field(default_factory=list)

    @property
    def current_label(self) -> str:
        return ",".join(self.current) or "base"

    @property
    def head_label(self) -> str:
        return ",".join(self.heads) or "base"

    @property
    def serves(self) -> bool:
        """The image can serve on this database: at head; only post-deploy revisions
        pending (they run after the rollout, by design); ahead after a rollback; or
        stamped backwards over revisions that all ran (only the bookkeeping is behind)."""
        return self.state in (AT_HEAD, POST_DEPLOY_PENDING, AHEAD) or self.only_stamped_backwards

    @property
    def only_stamped_backwards(self) -> bool:
        """Stamped backwards, and every ordinary revision "pending" already ran (the ledger says so):
        the schema is the image's; only the bookkeeping is behind."""
        ran = set(self.recorded)
        return self.state == STAMPED_BACKWARDS and all(item.split(" ")[0] in ran for item in self.pending)

    def as_dict(self) -> dict:
        """A JSON-friendly view, as served by ``/readyz`` and ``doctor --json``."""
        return {
            "state": self.state,
            "current": self.current_label,
            "head": self.head_label,
            "pending": self.pending,
            "foreign": self.foreign,
            "post_deploy_pending": self.post_deploy_pending,
            "recorded_as_applied": self.recorded,
        }


# state -> (summary, cause, fix); {current}, {head}, {pending}, {foreign} are filled in.
STATES: dict[str, tuple[str, str | None, str | None]] = {
    AT_HEAD: ("database is at head {head}", None, None),
    POST_DEPLOY_PENDING: (
        "database is at the ordinary head; {waiting} post-deploy revision(s) pending",
        "post-deploy (contract) revisions wait until no pod of the previous image is left",
        "after `kubectl rollout status`, run the post-deploy job (k8s/post-deploy-job.yaml), or `flask db upgrade`",
    ),
    PENDING: (
        "Target database is not up to date: {count} pending migration(s)",
        "migrations were added (git pull, a new image) but not applied to this database",
        "flask db upgrade",
    ),
    AHEAD: (
        "database is ahead of this image (at {current}, image head {head})",
        "a newer image migrated it; this one was rolled back (kubectl rollout undo) or is out of date",
        "deploy the newer image again, or revert the schema: `flask db downgrade {head}` "
        "(it uses the ledger's stored source)",
    ),
    UNKNOWN: (
        "Can't locate revision {foreign}: neither this image nor the ledger knows it",
        "the database was migrated from another branch or a deleted revision file",
        "deploy or check out the code that has the revision; or, to adopt the database as it is: "
        "flask db backup, then DELETE FROM alembic_version, then flask db baseline (it stamps only a "
        "matching schema)",
    ),
    MULTIPLE_HEADS: (
        "multiple heads in the migration scripts: {head}",
        "two branches each added a revision on the same parent (a post-deploy chain's head is no "
        "such head: see safe_migrations/post_deploy.py)",
        'flask db merge -m "Merge heads" {heads}, commit it, and rebuild the image',
    ),
    NO_HISTORY: (
        "the database has tables but no migration history",
        "it was created before migrations were adopted (by the app itself or by hand)",
        "flask db baseline (stamps head only if the schema matches; `flask db upgrade` would fail)",
    ),
    STAMPED_BACKWARDS: (
        "alembic_version is at {current}, but the ledger records {recorded} as applied",
        "a stamp (or an edit of alembic_version) moved the version back without reverting them: an upgrade "
        "would run them a second time, data migrations included",
        "flask db stamp {newest} (back to what the ledger records as applied); to run them again on "
        "purpose: flask db upgrade --yes",
    ),
    STAMPED_EMPTY: (
        "the database is stamped at {current} but has none of its tables",
        "`flask db stamp head` ran on an empty database (the ledger says stamp): stamping records a "
        "revision without running it",
        "flask db stamp base, then flask db upgrade (creates the tables)",
    ),
}


def explain(status: SchemaStatus) -> Finding:
    """What ``status`` means for a person, from :data:`STATES`: its message (the summary), cause and fix.

    ``as_line()`` is the one line start-up and the runtime print.
    """
    summary, cause, fix = STATES[status.state]
    values = {
        "current": status.current_label,
        "head": status.head_label,
        "count": len(status.pending),
        "waiting": len(status.post_deploy_pending),
        "heads": " ".join(status.heads),
        "foreign": ", ".join(status.foreign),
        "recorded": ", ".join(status.recorded),
        "newest": status.recorded[-1] if status.recorded else "",
    }
    return Finding(status.state, summary.format(**values), fix.format(**values) if fix else None, cause=cause)


def is_known(script: ScriptDirectory, revision: str) -> bool:
    """True when this image ships a script for ``revision``."""
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def current_heads(connection: Connection) -> tuple[str, ...]:
    """The revisions recorded in ``alembic_version`` (empty for a new database).

    Read directly rather than through a MigrationContext, which logs a line on
    every call: readiness probes ask this every few seconds.
    """
    if not inspect(connection).has_table(VERSION_TABLE):
        return ()
    return tuple(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


def application_tables(connection: Connection) -> set[str]:
    """The database's tables other than the migration bookkeeping."""
    return set(inspect(connection).get_table_names()) - _BOOKKEEPING


def pending_scripts(script: ScriptDirectory, current: tuple[str, ...]) -> list[Script]:
    """The ordinary revisions between ``current`` and the trunk head, oldest first:
    what pod start-up applies (post-deploy revisions wait for the post-deploy job)."""
    graph = contract.cached_graph(script)
    done = contract.applied(script, current)
    return [r for r in contract.oldest_first(script) if r.revision not in done and r.revision not in graph.waiting]


def pending_revisions(script: ScriptDirectory, current: tuple[str, ...]) -> list[str]:
    """Ordinary revisions between ``current`` and the trunk head, oldest first, as ``rev (message)``."""
    return contract.describe(pending_scripts(script, current))


def read_status(connection: Connection, script: ScriptDirectory) -> SchemaStatus:
    """Compare the database behind ``connection`` with ``script``; a few cheap queries."""
    heads = tuple(script.get_heads())
    current = current_heads(connection)
    # Several heads are fine when all but one are post-deploy chains; two
    # ordinary heads (two branches, each with a new revision) are not.
    trunk = contract.cached_graph(script).trunk_heads
    if len(trunk) > 1:  # the ordinary heads to merge, never a post-deploy chain's
        return SchemaStatus(MULTIPLE_HEADS, current, trunk)
    foreign = [rev for rev in current if not is_known(script, rev)]
    if foreign:
        known = {rev.revision for rev in script.walk_revisions()}
        chains = [ledger.applied_chain(connection, rev, known) for rev in foreign]
        state = AHEAD if all(chain is not None for chain in chains) else UNKNOWN
        return SchemaStatus(state, current, heads, foreign=foreign)
    # A post-deploy head depends on a trunk revision, so Alembic may keep only the
    # post-deploy head's row: at head means every revision applied.
    if set(current) == set(heads) or contract.everything_applied(script, current):
        state = STAMPED_EMPTY if current and not application_tables(connection) else AT_HEAD
        return SchemaStatus(state, current, heads)
    if not current and application_tables(connection):
        # Another runner may have committed its first revision (tables and version row
        # together) between the two reads: only a second empty read means no history.
        if current_heads(connection):
            return read_status(connection, script)
        return SchemaStatus(NO_HISTORY, current, heads, pending=pending_revisions(script, current))
    waiting = contract.describe(contract.pending(script, current))
    ordinary = pending_revisions(script, current)
    done = contract.applied(script, current)
    lacking = [rev.revision for rev in contract.oldest_first(script) if rev.revision not in done]
    recorded = ledger.recorded_as_applied(connection, lacking)
    if recorded:
        # Another runner may have committed a revision (its version row and ledger row
        # together) between the two reads: only an unchanged version row means a stamp back.
        if current_heads(connection) != current:
            return read_status(connection, script)
        ran = [rev for rev in lacking if rev in recorded]
        return SchemaStatus(
            STAMPED_BACKWARDS, current, heads, pending=ordinary, post_deploy_pending=waiting, recorded=ran
        )
    state = PENDING if ordinary else POST_DEPLOY_PENDING
    return SchemaStatus(state, current, heads, pending=ordinary, post_deploy_pending=waiting)
