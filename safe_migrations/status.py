"""Where a database stands relative to the migration scripts of this image."""

from __future__ import annotations

from dataclasses import dataclass, field

from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from safe_migrations import ledger
from safe_migrations import post_deploy as contract

AT_HEAD = "at_head"
PENDING = "pending"
# Every ordinary revision applied; post-deploy ones wait for the post-deploy job.
POST_DEPLOY_PENDING = "post_deploy_pending"
AHEAD = "ahead"
UNKNOWN = "unknown_revision"
MULTIPLE_HEADS = "multiple_heads"
VERSION_TABLE = "alembic_version"
# States in which the image can serve (``/readyz`` answers 200): at head; only
# post-deploy revisions pending (they run after the rollout); or ahead of the
# image after ``kubectl rollout undo`` (the newer schema is backward compatible).
SERVING_STATES = (AT_HEAD, POST_DEPLOY_PENDING, AHEAD)


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

    @property
    def serves(self) -> bool:
        """True when the image may serve on this database (see SERVING_STATES)."""
        return self.state in SERVING_STATES

    @property
    def current_label(self) -> str:
        return ",".join(self.current) or "base"

    @property
    def head_label(self) -> str:
        return ",".join(self.heads) or "base"

    def as_dict(self) -> dict:
        """A JSON-friendly view, as served by ``/readyz`` and ``doctor --json``."""
        return {
            "state": self.state,
            "current": self.current_label,
            "head": self.head_label,
            "pending": self.pending,
            "foreign": self.foreign,
            "post_deploy_pending": self.post_deploy_pending,
        }


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
    """Compare the database behind ``connection`` with ``script``; one or two cheap queries."""
    heads = tuple(script.get_heads())
    current = current_heads(connection)
    # Several heads are fine when all but one are post-deploy chains; two
    # ordinary heads (two branches, each with a new revision) are not.
    if len(contract.cached_graph(script).trunk_heads) > 1:
        return SchemaStatus(MULTIPLE_HEADS, current, heads)
    foreign = [rev for rev in current if not is_known(script, rev)]
    if foreign:
        known = {rev.revision for rev in script.walk_revisions()}
        chains = [ledger.applied_chain(connection, rev, known) for rev in foreign]
        state = AHEAD if all(chain is not None for chain in chains) else UNKNOWN
        return SchemaStatus(state, current, heads, foreign=foreign)
    if set(current) == set(heads):
        return SchemaStatus(AT_HEAD, current, heads)
    waiting = contract.describe(contract.pending(script, current))
    ordinary = pending_revisions(script, current)
    state = PENDING if ordinary else POST_DEPLOY_PENDING
    return SchemaStatus(state, current, heads, pending=ordinary, post_deploy_pending=waiting)
