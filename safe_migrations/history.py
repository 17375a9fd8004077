"""Edited history: applied revisions whose file no longer matches what was applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from safe_migrations import ledger
from safe_migrations.scripts import file_checksum
from safe_migrations.status import current_heads, is_known


@dataclass(frozen=True)
class ChangedRevision:
    """An applied revision whose file's checksum differs from the ledger's."""

    revision: str
    filename: str
    applied_checksum: str
    file_checksum: str


def applied_revisions(connection: Connection, script: ScriptDirectory) -> list[str]:
    """Revisions of this image that the database has applied (its heads and their ancestors)."""
    heads = [rev for rev in current_heads(connection) if is_known(script, rev)]
    if not heads:
        return []
    return [rev.revision for rev in script.iterate_revisions(tuple(heads), "base")]


def changed_revisions(connection: Connection, script: ScriptDirectory) -> list[ChangedRevision]:
    """Applied revisions whose script file was edited after it ran."""
    applied = applied_revisions(connection, script)
    recorded = ledger.latest_applications(connection, applied)
    changed = []
    for revision in applied:
        row = recorded.get(revision)
        if row is None or not row["checksum"]:
            continue  # applied before the ledger existed, or stamped: nothing to compare
        path = Path(script.get_revision(revision).path)
        now = file_checksum(path)
        if now != row["checksum"]:
            changed.append(ChangedRevision(revision, path.name, row["checksum"], now))
    return changed
