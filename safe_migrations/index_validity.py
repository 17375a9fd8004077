"""Every index a revision builds is valid before the revision is recorded as applied.

A ``CREATE INDEX CONCURRENTLY`` that fails (duplicates for a unique index, a
lock or statement timeout, a killed process) leaves an INVALID index behind:
PostgreSQL does not use it for queries and, for a unique one, does not enforce
it. Two things keep that from being recorded as done:

- :class:`IndexWatch` sits on the migration connection. Before a
  ``CREATE INDEX`` it drops an invalid index of that name, so
  ``IF NOT EXISTS`` never skips a broken index (and a plain build does not
  stop at "already exists"): the rerun rebuilds it, and fails again with
  PostgreSQL's own DETAIL while the cause is still there;
- before the ledger records a revision, :func:`refuse_invalid` checks the
  indexes the revision's statements built (``pg_index.indisvalid``) and fails
  the revision with the index, why and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection

from safe_migrations.log import log

_CREATE_INDEX = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?P<concurrently>CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?"
    r"(?P<name>\"(?:[^\"]|\"\")+\"|[\w$]+)",
    re.I,
)

_INVALID_INDEXES = """
SELECT c.relname AS name, t.relname AS table_name, i.indisunique AS is_unique,
       pg_get_expr(i.indpred, i.indrelid) AS predicate,
       array(SELECT quote_ident(a.attname) FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum ORDER BY k.n) AS columns
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
WHERE NOT i.indisvalid AND c.relnamespace = current_schema()::regnamespace
"""


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


@dataclass(frozen=True)
class InvalidIndex:
    """An index PostgreSQL marked INVALID, and what a person needs to know about it."""

    name: str
    table: str
    why: str
    fix: str

    def describe(self) -> str:
        return f"index {self.name} on {self.table} is INVALID: {self.why}"

    def as_line(self) -> str:
        return f"{self.describe()}; {self.fix}"


def _duplicate(connection: Connection, table: str, columns: list[str], predicate: str | None) -> str | None:
    """PostgreSQL's DETAIL for a unique index that cannot be built: one duplicated key, or None."""
    if not columns:
        return None
    listed = ", ".join(columns)
    quote = connection.dialect.identifier_preparer.quote
    where = " AND ".join([f"{c} IS NOT NULL" for c in columns] + ([f"({predicate})"] if predicate else []))
    row = connection.execute(
        text(
            f"SELECT {', '.join(f'{c}::text' for c in columns)}, count(*) FROM {quote(table)} "
            f"WHERE {where} GROUP BY {listed} HAVING count(*) > 1 LIMIT 1"
        )
    ).first()
    if row is None:
        return None
    values = ", ".join(str(v) for v in row[:-1])
    return f"Key ({listed})=({values}) is duplicated ({row[-1]} rows)"


def invalid_indexes(connection: Connection, names: set[str] | None = None) -> list[InvalidIndex]:
    """The invalid indexes of the current schema (only those in ``names`` when given), explained."""
    found = []
    for row in connection.execute(text(_INVALID_INDEXES)).mappings():
        if names is not None and row["name"] not in names:
            continue
        duplicate = _duplicate(connection, row["table_name"], list(row["columns"]), row["predicate"])
        if row["is_unique"] and duplicate:
            why = duplicate
            fix = (
                "remove the duplicate rows, then run `flask db upgrade` again "
                "(the rerun drops the invalid index and rebuilds it)"
            )
        else:
            why = "its concurrent build was interrupted (failed, timed out or killed)"
            fix = "run `flask db upgrade` again (the rerun drops the invalid index and rebuilds it)"
        found.append(InvalidIndex(row["name"], row["table_name"], why, fix))
    return found


class IndexWatch:
    """Watches the statements of a migration connection for index builds (see the module docstring)."""

    def __init__(self) -> None:
        self.built: set[str] = set()

    def attach(self, connection: Connection) -> None:
        event.listen(connection, "before_cursor_execute", self._before)

    def detach(self, connection: Connection) -> None:
        if event.contains(connection, "before_cursor_execute", self._before):
            event.remove(connection, "before_cursor_execute", self._before)

    def take(self) -> set[str]:
        """The indexes built since the last call (one revision's)."""
        built, self.built = self.built, set()
        return built

    def _before(self, conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        match = _CREATE_INDEX.match(statement)
        if match is None or conn.dialect.name != "postgresql":
            return
        name = _unquote(match["name"])
        self.built.add(name)
        cursor.execute(
            "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE NOT i.indisvalid AND c.relname = %(name)s AND c.relnamespace = current_schema()::regnamespace",
            {"name": name},
        )
        if cursor.fetchone() is None:
            return
        log.warning("dropping invalid index %s left by an interrupted concurrent build; building it again", name)
        quoted = conn.dialect.identifier_preparer.quote(name)
        cursor.execute(f"DROP INDEX {'CONCURRENTLY ' if match['concurrently'] else ''}IF EXISTS {quoted}")


class InvalidIndexLeft(RuntimeError):
    """A revision built an index that is not valid; it must not be recorded as applied.

    Raised inside the revision's run, like any error of a step: the runtime
    turns it into its one-line failure (the revision, this, where the database stays).
    """


def refuse_invalid(connection: Connection, built: set[str]) -> None:
    """Raise :class:`InvalidIndexLeft` when an index in ``built`` is INVALID (PostgreSQL only)."""
    if not built or connection.dialect.name != "postgresql":
        return
    invalid = invalid_indexes(connection, built)
    if invalid:
        raise InvalidIndexLeft("; ".join(index.as_line() for index in invalid))


def left_behind(connection: Connection, built: set[str]) -> str:
    """``; it left INVALID index X behind (...)`` for a failed revision's message ('' if none)."""
    if not built or connection.dialect.name != "postgresql":
        return ""
    try:
        names = [index.name for index in invalid_indexes(connection, built)]
    except Exception:  # only for the message; the failure itself is what matters
        return ""
    if not names:
        return ""
    return f"; it left INVALID index {', '.join(names)} behind (the rerun drops and rebuilds it)"
