"""The statement observer: what a revision runs is what is judged.

One :class:`StatementObserver` watches the migration connection through
SQLAlchemy's public events (``before_cursor_execute`` and
``after_cursor_execute``) while revisions run, on every path: the entrypoint,
``flask db``, Alembic's Python API with or without a caller's connection in
``config.attributes["connection"]``; offline (``--sql``) it reads the rendered
SQL as Alembic writes it to its ``output_buffer``. Each statement, however the
revision wrote it (``op.*``, ``op.execute``, ``op.get_bind().execute``,
``exec_driver_sql``, a multi-statement string), is classified once by
:mod:`safe_migrations.statements` and handed to the listeners.

Listeners are how the gates (:mod:`safe_migrations.gates`) and the rehearsal
record what runs. A listener is any object with two methods::

    class Timings:
        def before(self, observed: Observed) -> None:
            ...  # raise a MigrationError to refuse the statement: it never runs

        def after(self, observed: Observed) -> None:
            print(observed.revision.revision, observed.statement.describe(), observed.elapsed)

    observer.add(Timings())

``before`` runs for each classified statement of a cursor execution before it
reaches the database, listener after listener in the order they were added (the
gates first: a refusal stops the statement before later listeners hear it),
``after`` once it ran (``observed.elapsed`` in seconds; ``after`` is not called
when the statement failed). ``observed.cursor`` is the
DBAPI cursor (None offline): ``observed.cursor.connection.cursor()`` runs side
queries (``pg_locks``, ``relfilenode``) in the same session and transaction
without being observed. Effects on the bookkeeping tables (``alembic_version``,
the ledger) are dropped, a statement with no other effect is not handed over,
and nothing is while no revision is running.

In a migration run the runtime owns the observer: pass extra listeners as a
list in ``config.attributes["statement_listeners"]`` (Alembic's command API,
``safe_migrations.runtime.STATEMENT_LISTENERS``) and they hear every statement
of every revision the command runs, beside the gates.

The observer is PostgreSQL's: pglast is PostgreSQL's parser, and on SQLite
batch mode rebuilds tables (``DROP TABLE`` of the old copy), so SQLite runs keep
the source-level checks of :mod:`safe_migrations.checks` only.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Any, Protocol, TextIO, cast

from sqlalchemy import event
from sqlalchemy.engine import Connection

from safe_migrations.statements import Effect, Statement, classify, created_tables
from safe_migrations.steps import marker, steps


@dataclass(frozen=True)
class RunningRevision:
    """The revision whose statements are running, and in which direction."""

    revision: str
    path: Path
    upgrade: bool

    @property
    def filename(self) -> str:
        return self.path.name

    @cached_property
    def _markers(self) -> dict[str, object | None]:
        names = ("reviewed_destructive", "reviewed_contract", "post_deploy")
        return {name: marker(self.path, name) for name in names}

    def reason(self, name: str) -> str | None:
        """The written reason of a ``name = "why"`` marker (None if absent or empty)."""
        value = self._markers.get(name)
        return value.strip() if isinstance(value, str) and value.strip() else None

    @property
    def post_deploy(self) -> bool:
        return self._markers.get("post_deploy") is True

    @cached_property
    def widened(self) -> frozenset[str]:
        """``table.column`` whose ``alter_column`` the source shows widening (``existing_type``).

        Offline there is no database to read a column's current type from;
        the revision's own ``existing_type`` says it instead.
        """
        return frozenset(s.target for s in steps(self.path) if s.operation == "alter_column_type" and not s.destructive)


@dataclass
class Observed:
    """One classified statement of the running revision, as listeners see it."""

    statement: Statement
    revision: RunningRevision
    cursor: Any | None  # the DBAPI cursor; None offline
    # Every statement of the same cursor execution (a multi-statement string), in order.
    execution: tuple[Statement, ...] = ()
    started: float = field(default_factory=time.monotonic)
    elapsed: float | None = None  # set before ``after`` is called


class StatementListener(Protocol):
    """What the observer calls for each statement (see the module docstring)."""

    def before(self, observed: Observed) -> None: ...

    def after(self, observed: Observed) -> None: ...


# psycopg2's placeholders; the parser reads PostgreSQL's own.
_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s")
_COLUMN_TYPE = (
    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped"
)


class StatementObserver:
    """Classifies what runs on the migration connection and tells the listeners."""

    def __init__(self, running: Callable[[], RunningRevision | None], ignored_tables: Collection[str] = ()) -> None:
        self.running = running
        self.ignored_tables = set(ignored_tables)
        self.listeners: list[StatementListener] = []
        self._new_tables: dict[str, set[str]] = {}  # revision -> tables it created
        self._pending: list[Observed] = []

    def add(self, listener: StatementListener) -> None:
        """Call ``listener`` for every statement from now on."""
        self.listeners.append(listener)

    def observe(self, sql: str, cursor: Any | None = None, *, parameters: object = None) -> list[Observed]:
        """Classify ``sql`` and call every listener's ``before`` (a listener may raise to refuse it)."""
        revision = self.running()
        if revision is None or not self.listeners:
            return []
        if parameters:
            sql = _PLACEHOLDER.sub("$1", sql)
        new_tables = self._new_tables.setdefault(revision.revision, set())
        column_type = _column_type(cursor) if cursor is not None else None
        statements = []
        for statement in classify(sql, new_tables=new_tables, column_type=column_type):
            effects = tuple(e for e in statement.effects if not self._ignored(e, revision, offline=cursor is None))
            if not statement.effects or effects:  # else bookkeeping: alembic_version, the ledger
                statements.append(Statement(statement.sql, effects))
        new_tables.update(created_tables(sql))
        execution = tuple(statements)
        observed = [Observed(statement, revision, cursor, execution) for statement in statements]
        for item in observed:
            for listener in self.listeners:
                listener.before(item)
        return observed

    def finished(self, observed: list[Observed]) -> None:
        """Call every listener's ``after`` for statements that ran."""
        for item in observed:
            item.elapsed = time.monotonic() - item.started
            for listener in self.listeners:
                listener.after(item)

    def _ignored(self, effect: Effect, revision: RunningRevision, *, offline: bool) -> bool:
        if offline and effect.rule == "lossy_type_change" and f"{effect.table}.{effect.column}" in revision.widened:
            return True
        return effect.table is not None and effect.table.rpartition(".")[2] in self.ignored_tables

    @contextmanager
    def watching(self, connection: Connection) -> Iterator[None]:
        """Observe every cursor execution on ``connection`` (a caller's too) inside the block."""

        def before(_conn: Connection, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            self._pending = self.observe(statement, cursor, parameters=parameters)

        def after(_conn: Connection, _cursor: Any, *_: Any) -> None:
            done, self._pending = self._pending, []
            self.finished(done)

        event.listen(connection, "before_cursor_execute", before)
        event.listen(connection, "after_cursor_execute", after)
        try:
            yield
        finally:
            event.remove(connection, "before_cursor_execute", before)
            event.remove(connection, "after_cursor_execute", after)

    def rendering(self, output: IO[str]) -> TextIO:
        """An ``output_buffer`` for offline mode: each statement Alembic writes is observed first."""
        return cast(TextIO, ObservedOutput(self, output))  # a stream by duck typing, as Alembic uses it


class ObservedOutput:
    """A text stream that observes what Alembic renders offline before passing it on.

    Alembic writes each rendered statement (and each ``-- Running ...``
    comment) with one ``write`` call to the ``output_buffer`` it is configured
    with, its public option for offline output.
    """

    def __init__(self, observer: StatementObserver, output: IO[str]) -> None:
        self.observer = observer
        self.output = output

    def write(self, text: str) -> int:
        observed = self.observer.observe(text)
        written = self.output.write(text)
        self.observer.finished(observed)
        return written

    def flush(self) -> None:
        self.output.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, ...: the wrapped stream's
        return getattr(self.output, name)


def _column_type(cursor: Any) -> Callable[[str, str], str | None]:
    """The current type of a column, read in the migration's own session (not observed)."""

    def current(table: str, column: str) -> str | None:
        side = cursor.connection.cursor()
        try:
            side.execute(_COLUMN_TYPE, (table, column))
            row = side.fetchone()
        finally:
            side.close()
        return row[0] if row else None

    return current
