"""What each migration statement did on the scratch database: locks, rewrites, scans, rows, time.

A listener of the statement observer on the migration connection
(:mod:`safe_migrations.observer`, the one the gates listen to): ``before`` and
``after`` run around every statement a revision executes. Its own queries go
through the DBAPI connection directly, so they are neither observed nor
recorded. Per recorded statement:

- **locks**: the relation locks its backend holds after it (``pg_locks``)
  that it did not hold before. A statement outside a transaction
  (``CREATE INDEX CONCURRENTLY`` in Alembic's ``autocommit_block``) has
  released its locks when it returns, so for those a second connection
  polls ``pg_locks`` of the migration backend while it runs;
- **rewrites**: relations whose ``pg_class.relfilenode`` changed;
- **scanned**: tables whose tuple counters moved (``pg_stat_user_tables``
  plus this transaction's ``pg_stat_xact_user_tables``) or that it rewrote:
  what it read or wrote, and so what its duration grows with;
- **rows**: the row count of a DML statement, else the rows of the largest
  table it scanned or rewrote.

Plain reads and ``SET`` are not recorded; the observer already leaves out
the runtime's bookkeeping (the version table, the ledger).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg2

from safe_migrations.observer import Observed
from safe_migrations.rehearse.scratch import RELATION_NAME, USER_RELATIONS, libpq_url

_SNAPSHOT = (
    f"SELECT c.oid, {RELATION_NAME}, c.relkind, c.relfilenode, pg_relation_size(c.oid), "
    f"greatest(c.reltuples, 0)::bigint {USER_RELATIONS}"
)
# Every tuple counter of each table, what was flushed plus this backend's pending ones: it moves
# whenever a statement reads (scans) or writes the table.
_COUNTERS = (
    "SELECT s.relid, s.seq_tup_read + coalesce(s.idx_tup_fetch, 0) + s.n_tup_ins + s.n_tup_upd + s.n_tup_del "
    "+ x.seq_tup_read + coalesce(x.idx_tup_fetch, 0) + x.n_tup_ins + x.n_tup_upd + x.n_tup_del "
    "FROM pg_stat_user_tables s JOIN pg_stat_xact_user_tables x USING (relid)"
)
TABLE_KINDS = ("r", "p", "m")  # pg_class.relkind of tables and materialized views
_OWN_LOCKS = (
    "SELECT relation, mode FROM pg_locks WHERE pid = {pid} AND locktype = 'relation' AND granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)
# Reads and session settings a revision runs: they lock nothing the app waits for, and scale with nothing.
_NOT_A_STEP = re.compile(r"^\s*(SELECT|SET|SHOW|RESET)\b", re.IGNORECASE)


def is_step(statement: str) -> bool:
    """True for a statement worth recording (the observer hands over only a revision's, bookkeeping aside)."""
    return not _NOT_A_STEP.match(statement)


def mode_name(pg_mode: str) -> str:
    """``ShareRowExclusiveLock`` -> ``SHARE ROW EXCLUSIVE`` (the documentation's spelling)."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", pg_mode.removesuffix("Lock")).upper()


@dataclass(frozen=True)
class Relation:
    oid: int
    name: str  # as reports name it (schema.name outside public)
    kind: str  # pg_class.relkind
    filenode: int
    size: int  # bytes of the main fork
    rows: int  # pg_class.reltuples (the scratch copy is analyzed after it is filled)


@dataclass
class Recorded:
    """One statement of a revision, as the scratch database saw it."""

    revision: str
    sql: str
    ms: float
    in_transaction: bool
    locks: list[tuple[str, str]] = field(default_factory=list)  # (relation, MODE), strongest first per relation
    rewrites: list[str] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)  # the locked relations that are tables (not indexes)
    # Tables it scanned or rewrote -> their bytes on the sample before it. Tables only: rebuilding
    # an index costs what its table's rows cost; the old index's (possibly bloated) size does not matter.
    scanned: dict[str, int] = field(default_factory=dict)
    rows: int = 0


def _snapshot(cursor: Any) -> dict[int, Relation]:
    cursor.execute(_SNAPSHOT)
    return {row[0]: Relation(*row) for row in cursor.fetchall()}


def _counters(cursor: Any) -> dict[int, int]:
    cursor.execute(_COUNTERS)
    return {relid: int(total) for relid, total in cursor.fetchall()}


class LockPoller:
    """Polls ``pg_locks`` of one backend from a connection of its own until stopped."""

    def __init__(self, url: str, pid: int) -> None:
        self.seen: set[tuple[int, str]] = set()
        self._stop = threading.Event()
        self._connection = psycopg2.connect(libpq_url(url), application_name="flask db rehearse (lock poller)")
        self._connection.autocommit = True
        self._query = _OWN_LOCKS.format(pid=int(pid))
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        with self._connection.cursor() as cursor:
            while not self._stop.is_set():
                cursor.execute(self._query)
                self.seen.update(cursor.fetchall())
                time.sleep(0.001)

    def stop(self) -> set[tuple[int, str]]:
        self._stop.set()
        self._thread.join(10)
        self._connection.close()
        return self.seen


@dataclass
class _Pending:
    started: float
    relations: dict[int, Relation]
    counters: dict[int, int]
    locks: set[tuple[int, str]]
    in_transaction: bool
    poller: LockPoller | None


class Recorder:
    """The rehearsal's listener of the statement observer (:mod:`safe_migrations.observer`)."""

    def __init__(self, scratch_url: str) -> None:
        self.scratch_url = scratch_url
        self.recorded: list[Recorded] = []
        self._pending: _Pending | None = None

    def before(self, observed: Observed) -> None:
        """Snapshot relations, counters and held locks; start polling locks outside a transaction.

        A string of several statements runs as one execution: it is recorded once, as a whole.
        """
        if not _first(observed):
            return
        self.close()  # a statement that failed got no ``after``
        if observed.cursor is None or not is_step(observed.statement.sql):
            return
        connection = observed.cursor.connection
        in_transaction = not connection.autocommit
        with connection.cursor() as cursor:
            relations = _snapshot(cursor)
            counters = _counters(cursor)
            cursor.execute(_OWN_LOCKS.format(pid=connection.get_backend_pid()))
            locks = set(cursor.fetchall())
        poller = None if in_transaction else LockPoller(self.scratch_url, connection.get_backend_pid())
        self._pending = _Pending(time.perf_counter(), relations, counters, locks, in_transaction, poller)

    def after(self, observed: Observed) -> None:
        """Record what the statement did (see the module docstring)."""
        pending, self._pending = self._pending, None
        if pending is None or observed.cursor is None or not _first(observed):
            self._pending = pending
            return
        ms = (time.perf_counter() - pending.started) * 1000
        polled = pending.poller.stop() if pending.poller is not None else set()
        connection = observed.cursor.connection
        with connection.cursor() as cursor:
            relations = _snapshot(cursor)
            counters = _counters(cursor)
            cursor.execute(_OWN_LOCKS.format(pid=connection.get_backend_pid()))
            locks = set(cursor.fetchall()) | polled
        before = pending.relations
        names = {oid: r.name for oid, r in {**relations, **before}.items()}
        # Locks on relations that existed before the statement: a relation it created is nobody else's yet.
        taken = sorted(
            {(names[oid], mode_name(mode)) for oid, mode in locks - pending.locks if oid in before},
            key=lambda lock: (lock[0], -STRENGTH[lock[1]]),
        )
        rewrites = sorted(
            before[oid].name for oid, r in relations.items() if oid in before and r.filenode != before[oid].filenode
        )
        moved = {oid for oid, now in counters.items() if now != pending.counters.get(oid, 0)}
        touched = [r for oid, r in before.items() if r.kind in TABLE_KINDS and (oid in moved or r.name in rewrites)]
        rowcount = observed.cursor.rowcount
        self.recorded.append(
            Recorded(
                revision=observed.revision.revision,
                sql=" ".join("; ".join(s.sql for s in observed.execution or (observed.statement,)).split()),
                ms=ms,
                in_transaction=pending.in_transaction,
                locks=taken,
                tables={r.name for r in before.values() if r.kind in TABLE_KINDS} & {name for name, _ in taken},
                rewrites=rewrites,
                scanned={r.name: r.size for r in touched},
                rows=rowcount if rowcount >= 0 else max((r.rows for r in touched), default=0),
            )
        )

    def close(self) -> None:
        """Stop the lock poller of a statement that never finished (it failed, or the run was interrupted)."""
        pending, self._pending = self._pending, None
        if pending is not None and pending.poller is not None:
            pending.poller.stop()


def _first(observed: Observed) -> bool:
    """True for the first statement of its execution (the one the execution is recorded under)."""
    return not observed.execution or observed.statement is observed.execution[0]


# Lock modes from weakest to strongest (PostgreSQL's table-level lock modes).
MODES = (
    "ACCESS SHARE",
    "ROW SHARE",
    "ROW EXCLUSIVE",
    "SHARE UPDATE EXCLUSIVE",
    "SHARE",
    "SHARE ROW EXCLUSIVE",
    "EXCLUSIVE",
    "ACCESS EXCLUSIVE",
)
STRENGTH = {mode: rank for rank, mode in enumerate(MODES)}
