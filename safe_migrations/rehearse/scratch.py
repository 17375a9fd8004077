"""The scratch database a rehearsal runs in: the live schema, a bounded sample of its rows, dropped after.

Live is only read, on connections that are read-only themselves (``SET
SESSION CHARACTERISTICS AS TRANSACTION READ ONLY``), so a read-only role is
enough: ``pg_dump --schema-only`` (custom format) for the schema, ``COPY
(SELECT ... TABLESAMPLE ...) TO STDOUT`` for the rows. The scratch database is
created on the same server, or on ``REHEARSE_DATABASE_URL`` (a role there
needs CREATEDB), and filled in three steps so that sampled rows never break a
constraint:

1. ``pg_restore --section=pre-data``: tables, types, sequences, functions;
   no indexes, constraints or triggers yet;
2. each table's sample (the migration bookkeeping tables whole); then the
   parent rows the sampled children reference, fetched by key, until no
   foreign key misses its parent (what is still missing after a few rounds
   is deleted from the child); sequences set to live's values;
3. ``pg_restore --section=post-data``: indexes, constraints, triggers, built
   on the sample as they are on live; then ``VACUUM ANALYZE``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import make_url

from safe_migrations.backup import libpq_environment
from safe_migrations.findings import MigrationError
from safe_migrations.ledger import LEDGER_TABLE
from safe_migrations.status import VERSION_TABLE

# Copied whole, never sampled: the runtime reads them to know where the database is.
BOOKKEEPING = frozenset({VERSION_TABLE, LEDGER_TABLE})
# Tables above this many pages are sampled by page (SYSTEM: reads only the sampled
# pages of live); smaller ones by row (BERNOULLI: reads the whole table, evenly).
PAGE_SAMPLING_FROM = 10_000
# Rounds of fetching the parents that sampled rows reference (chains of foreign keys).
PARENT_ROUNDS = 8
SCRATCH_PREFIX = "rehearse_"
# User tables, indexes and materialized views of pg_class c (pg_namespace n), and how reports name them.
USER_RELATIONS = (
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'i', 'm', 'p') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
)
RELATION_NAME = "CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END"


class ScratchError(MigrationError):
    """The scratch database could not be made; the message says which step and why."""


@dataclass(frozen=True)
class Table:
    """A live table, copied to the scratch database."""

    schema: str
    name: str

    @property
    def identifier(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(self.name))


@dataclass(frozen=True)
class ForeignKey:
    child: Table
    child_columns: tuple[str, ...]
    parent: Table
    parent_columns: tuple[str, ...]


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as a libpq URI (psycopg2 and the pg_ tools)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def read_only_connection(url: str) -> Any:
    """A psycopg2 connection whose every transaction is read-only (live is never written)."""
    connection = psycopg2.connect(libpq_url(url), application_name="flask db rehearse (read-only)")
    connection.set_session(readonly=True, autocommit=True)
    return connection


def relation_sizes(connection: Any) -> dict[str, int]:
    """Relation name -> bytes of its main fork, for every user table, index and materialized view."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {RELATION_NAME}, pg_relation_size(c.oid) {USER_RELATIONS}")
        return {name: int(size) for name, size in cursor.fetchall()}


def _tables(live: Any) -> list[Table]:
    with live.cursor() as cursor:
        cursor.execute(f"SELECT n.nspname, c.relname {USER_RELATIONS} AND c.relkind = 'r' ORDER BY 1, 2")
        return [Table(schema, name) for schema, name in cursor.fetchall()]


def _pages(live: Any, table: Table) -> int:
    with live.cursor() as cursor:
        cursor.execute("SELECT relpages FROM pg_class WHERE oid = %s::regclass", (table.identifier.as_string(live),))
        return int(cursor.fetchone()[0])


def _foreign_keys(live: Any, tables: dict[tuple[str, str], Table]) -> list[ForeignKey]:
    with live.cursor() as cursor:
        cursor.execute(
            "SELECT cn.nspname, c.relname, pn.nspname, p.relname, "
            "ARRAY(SELECT attname FROM unnest(k.conkey) WITH ORDINALITY u(n, i) "
            "      JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i), "
            "ARRAY(SELECT attname FROM unnest(k.confkey) WITH ORDINALITY u(n, i) "
            "      JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i) "
            "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
            "JOIN pg_namespace cn ON cn.oid = c.relnamespace "
            "JOIN pg_class p ON p.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace "
            "WHERE k.contype = 'f'"
        )
        found = []
        for child_schema, child, parent_schema, parent, child_columns, parent_columns in cursor.fetchall():
            if (child_schema, child) in tables and (parent_schema, parent) in tables:
                found.append(
                    ForeignKey(
                        tables[(child_schema, child)],
                        tuple(child_columns),
                        tables[(parent_schema, parent)],
                        tuple(parent_columns),
                    )
                )
        return found


def _copy_rows(live: Any, scratch: Any, table: Table, select: sql.Composable) -> None:
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as buffer:
        with live.cursor() as cursor:
            cursor.copy_expert(sql.SQL("COPY ({}) TO STDOUT").format(select).as_string(live), buffer)
        buffer.seek(0)
        with scratch.cursor() as cursor:
            cursor.copy_expert(sql.SQL("COPY {} FROM STDIN").format(table.identifier).as_string(scratch), buffer)


def _sample(live: Any, scratch: Any, table: Table, fraction: float, max_rows: int) -> None:
    if table.name in BOOKKEEPING:
        select = sql.SQL("SELECT * FROM {}").format(table.identifier)
    else:
        method = "SYSTEM" if _pages(live, table) >= PAGE_SAMPLING_FROM else "BERNOULLI"
        select = sql.SQL("SELECT * FROM {} TABLESAMPLE {} ({}) LIMIT {}").format(
            table.identifier, sql.SQL(method), sql.Literal(fraction * 100), sql.Literal(max_rows)
        )
    _copy_rows(live, scratch, table, select)


def _orphans(key: ForeignKey) -> sql.Composed:
    """``FROM child c WHERE`` its key is set ``AND NOT EXISTS`` the parent row it references."""
    match = sql.SQL(" AND ").join(
        sql.SQL("p.{} = c.{}").format(sql.Identifier(p), sql.Identifier(c))
        for p, c in zip(key.parent_columns, key.child_columns, strict=True)
    )
    present = sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in key.child_columns)
    return sql.SQL("FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
        key.child.identifier, present, key.parent.identifier, match
    )


def _missing_parents(scratch: Any, key: ForeignKey) -> list[tuple[Any, ...]]:
    child_columns = sql.SQL(", ").join(sql.SQL("c.{}").format(sql.Identifier(c)) for c in key.child_columns)
    with scratch.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT DISTINCT {} {}").format(child_columns, _orphans(key)))
        return cursor.fetchall()


def _fetch_parents(live: Any, scratch: Any, key: ForeignKey, missing: list[tuple[Any, ...]]) -> None:
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in key.parent_columns)
    for start in range(0, len(missing), 1000):
        batch = tuple(missing[start : start + 1000])
        select = sql.SQL("SELECT * FROM {} WHERE ({}) IN {}").format(key.parent.identifier, columns, sql.Literal(batch))
        _copy_rows(live, scratch, key.parent, select)


def _drop_orphans(scratch: Any, key: ForeignKey) -> None:
    with scratch.cursor() as cursor:
        cursor.execute(sql.SQL("DELETE {}").format(_orphans(key)))


def _complete_parents(live: Any, scratch: Any, keys: list[ForeignKey]) -> None:
    for _ in range(PARENT_ROUNDS):
        fetched = False
        for key in keys:
            missing = _missing_parents(scratch, key)
            if missing:
                _fetch_parents(live, scratch, key, missing)
                fetched = True
        if not fetched:
            return
    for key in keys:
        _drop_orphans(scratch, key)


def _sequences(live: Any, scratch: Any) -> None:
    with live.cursor() as cursor:
        cursor.execute(
            "SELECT schemaname, sequencename, last_value FROM pg_sequences "
            "WHERE last_value IS NOT NULL AND schemaname NOT IN ('pg_catalog', 'information_schema')"
        )
        values = cursor.fetchall()
    with scratch.cursor() as cursor:
        for schema, name, value in values:
            qualified = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name)).as_string(scratch)
            cursor.execute("SELECT setval(%s::regclass, %s)", (qualified, value))


def _tool(name: str) -> str:
    binary = shutil.which(name)
    if binary is None:
        raise ScratchError(f"{name} is not installed (Debian: apt-get install postgresql-client)")
    return binary


def _run_tool(arguments: list[str], url: str) -> None:
    result = subprocess.run(
        [*arguments, "--no-password"], env=libpq_environment(url), capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        raise ScratchError(
            f"{Path(arguments[0]).name} failed (exit {result.returncode}): {result.stderr.strip()[:300]}"
        )


def _admin(url: str) -> Any:
    connection = psycopg2.connect(libpq_url(url), application_name="flask db rehearse (scratch admin)")
    connection.autocommit = True
    return connection


def scratch_name(live_url: str) -> str:
    """``rehearse_<live database>_<random>``: recognisably this rehearsal's, within PostgreSQL's 63 bytes."""
    live = (make_url(live_url).database or "postgres")[:40]
    return f"{SCRATCH_PREFIX}{live}_{uuid.uuid4().hex[:12]}"


def fill(live_url: str, scratch_url: str, fraction: float, max_rows: int) -> None:
    """Give the empty database at ``scratch_url`` live's schema and a sample of its rows (module docstring)."""
    with tempfile.TemporaryDirectory(prefix="rehearse-") as folder:
        schema = str(Path(folder) / "schema.dump")
        _run_tool([_tool("pg_dump"), "--schema-only", "--format=custom", f"--file={schema}"], live_url)
        restore = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction"]
        _run_tool([*restore, "--section=pre-data", f"--dbname={make_url(scratch_url).database}", schema], scratch_url)
        live, scratch = read_only_connection(live_url), psycopg2.connect(libpq_url(scratch_url))
        try:
            scratch.autocommit = True
            tables = _tables(live)
            for table in tables:
                _sample(live, scratch, table, fraction, max_rows)
            _complete_parents(live, scratch, _foreign_keys(live, {(t.schema, t.name): t for t in tables}))
            _sequences(live, scratch)
        finally:
            live.close()
            scratch.close()
        _run_tool([*restore, "--section=post-data", f"--dbname={make_url(scratch_url).database}", schema], scratch_url)
    admin = psycopg2.connect(libpq_url(scratch_url))
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    finally:
        admin.close()


@contextmanager
def _not_interrupted() -> Iterator[None]:
    """A second Ctrl-C must not stop the scratch database's removal half-way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def scratch_database(live_url: str, server_url: str | None, fraction: float, max_rows: int) -> Iterator[str]:
    """A filled scratch database (its URL) for the ``with`` block; dropped afterwards, whatever happened.

    ``server_url`` (``REHEARSE_DATABASE_URL``) names where to create it; None: live's server, live's role.
    """
    server = server_url or live_url
    name = scratch_name(live_url)
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    admin = _admin(server)
    try:
        with admin.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            fill(live_url, url, fraction, max_rows)
            yield url
        finally:
            with _not_interrupted(), admin.cursor() as cursor:
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        admin.close()


def scratch_databases(server_url: str, live_url: str) -> list[str]:
    """Scratch databases of ``live_url``'s rehearsals that exist on ``server_url`` (tests: none is left)."""
    live = (make_url(live_url).database or "postgres")[:40]
    connection = _admin(server_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (f"{SCRATCH_PREFIX}{live}_",)
            )
            return [row[0] for row in cursor.fetchall()]
    finally:
        connection.close()
