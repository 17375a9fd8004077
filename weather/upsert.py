"""Dialect-specific INSERT with ON CONFLICT, for the two databases the service runs on."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_for(session: Session, table: Any) -> Any:
    """An ``INSERT`` on ``table`` that supports ``on_conflict_do_*`` on the session's database."""
    return dialect_insert(session.get_bind().dialect.name, table)


def dialect_insert(dialect: str, table: Any) -> Any:
    """An ``INSERT`` on ``table`` that supports ``on_conflict_do_*`` on the ``dialect`` database."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")
