"""Who a migration statement waited for when it hit ``lock_timeout``: the real blocker, named.

Two kinds of wait end in "canceling statement due to lock timeout":

- an ordinary DDL statement asks for a lock on its table and another session
  holds a conflicting one: the sessions holding locks on the statement's
  tables (never on their indexes) are named;
- ``CREATE INDEX CONCURRENTLY`` (and its DROP/REINDEX siblings) takes no
  conflicting table lock at all: it waits for every transaction whose snapshot
  is older than the build to end. Those transactions are named, oldest first,
  whatever tables they touched.

Each is named with what an operator needs to decide: pid, application,
state, and how long its transaction has been open.
"""

from __future__ import annotations

from typing import Any

import pglast
from pglast import ast
from pglast.visitors import Visitor
from sqlalchemy import text
from sqlalchemy.engine import Connection


class _Relations(Visitor):
    def __init__(self) -> None:
        self.names: list[str] = []

    def visit_RangeVar(self, ancestors: object, node: ast.RangeVar) -> None:
        if node.relname and node.relname not in self.names:
            self.names.append(node.relname)


def _parse(statement: str) -> tuple[ast.Node | None, list[str]]:
    """The statement's parse tree and the tables it names (None, [] when unparseable)."""
    try:
        parsed = pglast.parse_sql(statement)
    except pglast.parser.ParseError:
        return None, []
    node = parsed[0].stmt if parsed else None
    relations = _Relations()
    if node is not None:
        relations(node)
    return node, relations.names


def _is_concurrent(node: ast.Node | None) -> bool:
    if isinstance(node, ast.IndexStmt):
        return bool(node.concurrent)
    if isinstance(node, ast.DropStmt):
        return bool(node.concurrent)
    if isinstance(node, ast.ReindexStmt):
        return any(getattr(option, "defname", "") == "concurrently" for option in node.params or ())
    return False


_SESSION = (
    "coalesce(a.application_name, '') AS app, coalesce(a.state, '') AS state, "
    "coalesce(extract(epoch FROM now() - a.xact_start)::int, 0) AS open_for"
)


def _who(row: Any) -> str:
    mode = f", {row.mode}" if getattr(row, "mode", None) else ""
    return f"pid {row.pid} ({row.app or '-'}, {row.state or '-'}, transaction open {row.open_for}s{mode})"


def describe_blockers(connection: Connection, statement: str | None) -> str:
    """Who ``statement`` waited for, in words (reads pg_locks / pg_stat_activity, then ends its transaction)."""
    node, tables = _parse(statement or "")
    try:
        if _is_concurrent(node):
            rows = connection.execute(
                text(
                    f"SELECT a.pid, {_SESSION} FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() "
                    "AND a.datname = current_database() AND (a.backend_xid IS NOT NULL OR a.backend_xmin IS NOT NULL) "
                    "AND a.backend_type = 'client backend' ORDER BY a.xact_start NULLS LAST"
                )
            ).all()
            if not rows:
                return "a concurrent index build waited for older transactions that have since finished"
            return "the concurrent index build waits for older transactions to end: " + "; ".join(
                _who(row) for row in rows
            )
        rows = connection.execute(
            text(
                f"SELECT DISTINCT c.relname, l.pid, l.mode, {_SESSION} FROM pg_locks l "
                "JOIN pg_class c ON c.oid = l.relation LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.granted AND l.pid <> pg_backend_pid() AND c.relkind IN ('r', 'p') "
                "AND c.relnamespace = current_schema()::regnamespace ORDER BY c.relname, l.pid"
            )
        ).all()
    finally:
        connection.rollback()
    named = [row for row in rows if row.relname in tables] or rows
    if not named:
        return "a session that has since finished"
    return "; ".join(f"table {row.relname} locked by {_who(row)}" for row in named)
