"""Databases for tests and benchmarks: created fresh on a PostgreSQL server, queried, dropped."""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from safe_migrations.urls import normalise_database_url

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"


def server_url(variable: str) -> str:
    """The PostgreSQL server named by environment ``variable`` (default: the local test server)."""
    return normalise_database_url(os.environ.get(variable, DEFAULT_SERVER))


def _run(url: str, statements: Sequence[str], *, autocommit: bool = False) -> None:
    """Statements in one committed transaction, or each on its own (autocommit: CREATE DATABASE)."""
    engine = create_engine(url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT" if autocommit else None)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def create_database(server: str, prefix: str) -> str:
    """A fresh, empty database ``<prefix><random>`` on ``server``; returns its URL."""
    name = f"{prefix}{uuid.uuid4().hex[:16]}"
    _run(server, [f'CREATE DATABASE "{name}"'], autocommit=True)
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def drop_database(server: str, url: str) -> None:
    """Drop the database of ``url`` (connections to it are ended) through ``server``."""
    _run(server, [f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'], autocommit=True)


def libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq URI (for ``psycopg2.connect``)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def query(url: str, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """All rows of one statement (``:name`` parameters), on a connection of its own, in autocommit mode."""
    engine = create_engine(url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            result = connection.execute(text(sql), dict(params or {}))
            return [tuple(row) for row in result.all()] if result.returns_rows else []
    finally:
        engine.dispose()


def scalar(url: str, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    """The first column of the first row of one query (None when there is none)."""
    rows = query(url, sql, params)
    return rows[0][0] if rows else None


def utc_instant(value: Any) -> datetime:
    """A timestamp as a raw query returns it (PostgreSQL: aware; SQLite: naive UTC text) as an aware UTC datetime.

    The service reads timestamps through models.UTCDateTime; raw SQL in tests and benches comes here.
    """
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def execute(url: str, *statements: str) -> None:
    """Run statements in one committed transaction."""
    _run(url, statements)
