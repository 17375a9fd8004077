"""Edited history: applied revisions whose file no longer matches what was applied."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from safe_migrations import ledger
from safe_migrations.findings import MigrationRefused
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


# A database with migration history but no ledger (dropped by hand, restored without it).
REBUILD_COMMAND = "flask db rebuild-ledger"
MISSING_LEDGER = (
    f"the ledger ({ledger.LEDGER_TABLE}) is missing on a database with migration history: applied migration "
    "files cannot be verified"
)
MISSING_LEDGER_FIX = (
    "check that the applied revision files are the ones that ran (git log -- migrations/versions), then rebuild "
    f"it from them: `{REBUILD_COMMAND}`"
)


def ledger_missing(connection: Connection) -> bool:
    """True when the database has applied revisions but no ledger to verify them against."""
    return bool(current_heads(connection)) and not ledger.has_table(connection)


def rebuild_ledger(connection: Connection, script: ScriptDirectory) -> list[str]:
    """Record each applied revision from its file as it is now (direction ``rebuilt``); oldest first.

    Only once a person has checked the files: from now on they are what the
    history is verified against.
    """
    if ledger.has_table(connection):
        raise MigrationRefused(f"the ledger ({ledger.LEDGER_TABLE}) exists; there is nothing to rebuild")
    applied = list(reversed(applied_revisions(connection, script)))
    for revision in applied:
        found = script.get_revision(revision)
        assert found is not None  # applied_revisions lists only this image's revisions
        path = Path(found.path)
        parents = found.down_revision
        ledger.record(
            connection,
            ledger.LedgerEntry(
                revision=revision,
                down_revisions=tuple(parents) if isinstance(parents, tuple | list) else ((parents,) if parents else ()),
                direction=ledger.REBUILT,
                message=found.doc,
                filename=path.name,
                checksum=file_checksum(path),
                source=path.read_text(encoding="utf-8"),
            ),
        )
    return applied
