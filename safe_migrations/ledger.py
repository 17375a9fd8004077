"""The applied-migration ledger: one row per step, written in the step's own transaction.

Alembic's ``alembic_version`` only says where a database is. The ledger says
how it got there: which revision ran, in which direction, from which file
(checksum and source), when, for how long and by which image. From it we can
detect edited history, recognise a database that is ahead of the running image,
and downgrade through revisions this image has never shipped.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, func, inspect, select
from sqlalchemy.engine import Connection

LEDGER_TABLE = "migration_history"

_metadata = MetaData()
migration_history = Table(
    LEDGER_TABLE,
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("revision", String(64), nullable=False),
    Column("down_revisions", String(255), nullable=False, default=""),
    Column("direction", String(10), nullable=False),
    Column("message", String(255)),
    Column("filename", String(255)),
    Column("checksum", String(64)),
    Column("source", Text),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Column("app_version", String(64)),
    Column("hostname", String(255)),
)

# "postdeploy": the upgrade of a post-deploy revision (safe_migrations/post_deploy.py),
# applied after the rollout; "up" is every other upgrade.
POST_DEPLOY = "postdeploy"
# Rows that say "this file, with this checksum, is what the database has".
REBUILT = "rebuilt"  # recorded from the files by `flask db rebuild-ledger` after the ledger was lost
APPLIED_DIRECTIONS = ("up", POST_DEPLOY, "baseline", "repair", REBUILT)


@dataclass(frozen=True)
class LedgerEntry:
    """One recorded step; ``revision`` is the script that ran (or the stamped target)."""

    revision: str
    down_revisions: tuple[str, ...]
    direction: str
    message: str | None = None
    filename: str | None = None
    checksum: str | None = None
    source: str | None = None
    duration_ms: int = 0


def ensure_table(connection: Connection) -> None:
    """Create the ledger table if it is missing (idempotent)."""
    migration_history.create(connection, checkfirst=True)


def has_table(connection: Connection) -> bool:
    """True when the ledger table exists in this database."""
    return inspect(connection).has_table(LEDGER_TABLE)


def record(connection: Connection, entry: LedgerEntry) -> None:
    """Append ``entry``; call inside the transaction of the step it describes.

    The table is created first when missing (in the same transaction): a
    caller's own connection or a database the ledger never saw still gets its row.
    """
    ensure_table(connection)
    connection.execute(
        migration_history.insert().values(
            revision=entry.revision,
            down_revisions=",".join(entry.down_revisions),
            direction=entry.direction,
            message=(entry.message or "")[:255] or None,
            filename=entry.filename,
            checksum=entry.checksum,
            source=entry.source,
            applied_at=datetime.now(UTC),
            duration_ms=entry.duration_ms,
            app_version=os.environ.get("APP_VERSION") or None,
            hostname=socket.gethostname()[:255],
        )
    )


def latest_applications(connection: Connection, revisions: Iterable[str]) -> dict[str, dict]:
    """The newest ``up``/``baseline``/``repair`` row of each revision in ``revisions`` that has one."""
    wanted = set(revisions)
    if not wanted or not has_table(connection):
        return {}
    rows = connection.execute(
        select(migration_history)
        .where(migration_history.c.revision.in_(wanted))
        .where(migration_history.c.direction.in_(APPLIED_DIRECTIONS))
        .order_by(migration_history.c.id)
    ).mappings()
    return {row["revision"]: dict(row) for row in rows}


def last_applied(connection: Connection, heads: Iterable[str]) -> str | None:
    """Of ``heads``, the one the ledger says was applied last (None when it cannot tell them all apart)."""
    wanted = set(heads)
    if not wanted or not has_table(connection):
        return None
    newest = connection.execute(
        select(migration_history.c.revision, func.max(migration_history.c.id))
        .where(migration_history.c.revision.in_(wanted))
        .where(migration_history.c.direction.in_(("up", POST_DEPLOY)))
        .group_by(migration_history.c.revision)
    ).all()
    if {revision for revision, _ in newest} != wanted:
        return None
    return max(newest, key=lambda row: row[1])[0]


def recorded_as_applied(connection: Connection, revisions: Iterable[str]) -> set[str]:
    """Those of ``revisions`` whose newest ledger row says they ran (up, post-deploy, baseline, repair).

    A revision reverted since (a ``down`` row) is not; one whose version row
    was moved back by a stamp still is: the stamp ran nothing.
    """
    wanted = set(revisions)
    if not wanted or not has_table(connection):
        return set()
    newest: dict[str, str] = {}
    for revision, direction in connection.execute(
        select(migration_history.c.revision, migration_history.c.direction)
        .where(migration_history.c.revision.in_(wanted))
        .where(migration_history.c.direction != "stamp")
        .order_by(migration_history.c.id)
    ):
        newest[revision] = direction
    return {revision for revision, direction in newest.items() if direction in APPLIED_DIRECTIONS}


def applied_chain(connection: Connection, head: str, known: Iterable[str]) -> list[dict] | None:
    """Walk the ledger down from ``head`` until a revision in ``known`` is reached.

    Returns the rows of the revisions on the way (newest first), or ``None``
    when the ledger cannot connect ``head`` to a known revision: then the
    revision is truly unknown, not merely ahead of this image.
    """
    known = set(known)
    chain: list[dict] = []
    frontier = [head]
    seen: set[str] = set()
    while frontier:
        revision = frontier.pop()
        if revision in known or revision in seen:
            continue
        seen.add(revision)
        row = latest_applications(connection, [revision]).get(revision)
        if row is None or not row["source"]:
            return None
        chain.append(row)
        frontier.extend(r for r in row["down_revisions"].split(",") if r)
    return chain


def rows(connection: Connection, limit: int = 50) -> list[dict]:
    """The newest ``limit`` ledger rows, newest first (for humans and the doctor)."""
    if not has_table(connection):
        return []
    result = connection.execute(select(migration_history).order_by(migration_history.c.id.desc()).limit(limit))
    return [dict(row) for row in result.mappings()]


def last_step_was_stamp(connection: Connection) -> str | None:
    """The revision of the ledger's newest row when that row is a stamp (which ran nothing), else None.

    A schema that differs from the migrations right after a stamp was never
    migrated there: the fix is to migrate it, not to write a new migration.
    """
    newest = rows(connection, limit=1)
    return newest[0]["revision"] if newest and newest[0]["direction"] == "stamp" else None
