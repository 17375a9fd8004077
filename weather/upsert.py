"""Dialect-specific INSERT with ON CONFLICT, for the two databases the service runs on."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from safe_migrations.urls import is_postgresql


def insert_for(session: Session | Connection, table: Any) -> Any:
    """An ``INSERT`` on ``table`` that supports ``on_conflict_do_*`` on the database of a session or connection."""
    # The two databases safe_migrations.urls accepts: one is PostgreSQL, the other SQLite.
    return postgresql.insert(table) if is_postgresql(session) else sqlite.insert(table)
