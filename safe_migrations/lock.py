"""One PostgreSQL advisory lock per database, so N pods migrate exactly once.

The lock is session-level (it survives the per-migration transactions and is
released by PostgreSQL if the process dies). Waiters poll with
``pg_try_advisory_lock`` instead of blocking in ``pg_advisory_lock``: a blocked
waiter holds an open transaction, and ``CREATE INDEX CONCURRENTLY`` in the
holder waits for every open transaction, so the two would deadlock.

SQLite needs no lock: a SQLite file is used by one process at a time (the
embedded default is for a laptop), and SQLite serialises writers itself.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection

from safe_migrations.findings import MigrationError
from safe_migrations.log import log

_POLL_MIN, _POLL_MAX = 0.05, 1.0
_REPORT_EVERY = 5.0


class LockWaitTimeout(MigrationError):
    """Another runner held the migration lock for longer than MIGRATION_LOCK_WAIT."""


def lock_key(database_name: str) -> int:
    """A signed 64-bit key derived from the database name: two databases never share it."""
    digest = hashlib.sha256(f"safe_migrations:{database_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_holder(connection: Connection, key: int) -> str | None:
    """Describe the session holding the lock as ``pid N (application_name X)``, if any."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = connection.execute(
        text(
            "SELECT l.pid, coalesce(a.application_name, '') AS app FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
    ).first()
    connection.commit()
    if row is None:
        return None
    return f"pid {row.pid} (application_name {row.app or '-'})"


def _try_lock(connection: Connection, key: int) -> bool:
    got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
    # Never sit in an open transaction while waiting (see the module docstring).
    connection.commit()
    return bool(got)


@contextmanager
def migration_lock(connection: Connection, wait_seconds: float) -> Iterator[None]:
    """Hold the database's migration lock for the ``with`` block (PostgreSQL only)."""
    database = connection.execute(text("SELECT current_database()")).scalar_one()
    connection.commit()
    key = lock_key(database)
    started = time.monotonic()
    delay, next_report = _POLL_MIN, 0.0
    while not _try_lock(connection, key):
        waited = time.monotonic() - started
        holder = lock_holder(connection, key) or "a session that just released it"
        if waited >= wait_seconds:
            raise LockWaitTimeout(
                f"gave up after {waited:.0f}s (MIGRATION_LOCK_WAIT={wait_seconds:g}) "
                f"waiting for lock held by {holder}; is another migration stuck? see `flask db doctor`"
            )
        if waited >= next_report:
            log.info("waiting for lock held by %s (waited %.1fs)", holder, waited)
            next_report = waited + _REPORT_EVERY
        time.sleep(min(delay, max(wait_seconds - waited, 0.01)))
        delay = min(delay * 2, _POLL_MAX)
    log.info("lock acquired (waited %.1fs)", time.monotonic() - started)
    try:
        yield
    finally:
        if not connection.closed:
            if connection.in_transaction():
                connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            connection.commit()


@contextmanager
def transaction_lock(connection: Connection, wait_seconds: float) -> Iterator[None]:
    """The same lock, held until the caller's transaction ends (for a caller's own connection).

    A caller that passes its connection inside a transaction (Alembic's
    cookbook recipe, migration test plugins) must not see it committed, so the
    transaction-level variant is polled instead; PostgreSQL releases it when the
    caller commits or rolls back.
    """
    database = connection.execute(text("SELECT current_database()")).scalar_one()
    key = lock_key(database)
    started = time.monotonic()
    delay = _POLL_MIN
    while not connection.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}).scalar():
        waited = time.monotonic() - started
        if waited >= wait_seconds:
            raise LockWaitTimeout(
                f"gave up after {waited:.0f}s (MIGRATION_LOCK_WAIT={wait_seconds:g}) waiting for the migration lock; "
                "is another migration stuck? see `flask db doctor`"
            )
        time.sleep(min(delay, max(wait_seconds - waited, 0.01)))
        delay = min(delay * 2, _POLL_MAX)
    yield
