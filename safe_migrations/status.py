"""Where a database stands relative to the migration scripts of this image."""

from __future__ import annotations

from dataclasses import dataclass, field

from alembic.script import Script, ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from safe_migrations import ledger

AT_HEAD = "at_head"
PENDING = "pending"
AHEAD = "ahead"
UNKNOWN = "unknown_revision"
MULTIPLE_HEADS = "multiple_heads"
VERSION_TABLE = "alembic_version"


@dataclass
class SchemaStatus:
    """The database's revision(s) against the image's head(s), with a verdict."""

    state: str
    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: list[str] = field(default_factory=list)
    # Revisions the database has that this image does not ship (ahead/unknown).
    foreign: list[str] = field(default_factory=list)

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
    """The revisions between ``current`` and head, oldest first."""
    revs = script.iterate_revisions("heads", current or "base")
    return [r for r in reversed(list(revs)) if r.revision not in current]


def pending_revisions(script: ScriptDirectory, current: tuple[str, ...]) -> list[str]:
    """Revisions between ``current`` and head, oldest first, as ``rev (message)``."""
    return [f"{r.revision} ({r.doc})" for r in pending_scripts(script, current)]


def read_status(connection: Connection, script: ScriptDirectory) -> SchemaStatus:
    """Compare the database behind ``connection`` with ``script``; one or two cheap queries."""
    heads = tuple(script.get_heads())
    current = current_heads(connection)
    if len(heads) > 1:
        return SchemaStatus(MULTIPLE_HEADS, current, heads)
    foreign = [rev for rev in current if not is_known(script, rev)]
    if foreign:
        known = {rev.revision for rev in script.walk_revisions()}
        chains = [ledger.applied_chain(connection, rev, known) for rev in foreign]
        state = AHEAD if all(chain is not None for chain in chains) else UNKNOWN
        return SchemaStatus(state, current, heads, foreign=foreign)
    if set(current) == set(heads):
        return SchemaStatus(AT_HEAD, current, heads)
    return SchemaStatus(PENDING, current, heads, pending=pending_revisions(script, current))
