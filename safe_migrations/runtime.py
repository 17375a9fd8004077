"""What ``migrations/env.py`` runs: Alembic's online/offline modes made safe for a fleet.

Online, for commands that write the schema (upgrade, downgrade, stamp):
1. the migrations to run are planned without any lock; if there are none the
   command is done (the fast path of a fleet restart at head);
2. the database's advisory lock is taken (PostgreSQL), so concurrent runners
   apply each revision exactly once;
3. each revision runs in its own transaction with ``lock_timeout`` and
   ``statement_timeout`` set, and is recorded in the ledger inside that same
   transaction; a lock timeout is retried with backoff.
Read-only commands (current, check, autogenerate) take no lock.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from sqlalchemy import MetaData, create_engine, event, pool, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from safe_migrations import ledger
from safe_migrations.lock import migration_lock
from safe_migrations.log import log
from safe_migrations.scripts import file_checksum
from safe_migrations.settings import MigrationSettings
from safe_migrations.urls import is_postgresql, normalise_database_url

# A database URL used only to render offline SQL for the PostgreSQL linter;
# offline mode never connects.
OFFLINE_POSTGRES_URL = "postgresql+psycopg2://lint@localhost/lint"
LOCK_NOT_AVAILABLE = "55P03"
_WRITING_COMMANDS = ("upgrade", "downgrade", "stamp")


class MigrationFailed(RuntimeError):
    """A migration step failed; the message names the revision and the cause."""


# MetaData.info key: name prefixes of tables another library owns (e.g. a job
# queue whose schema arrives through a revision): in the database, not in the models.
FOREIGN_TABLE_PREFIXES = "foreign_table_prefixes"


def include_name_for(metadata: MetaData) -> Callable[[str | None, str, dict[str, Any]], bool]:
    """Alembic's ``include_name``: autogenerate and ``flask db check`` skip the ledger and foreign tables."""
    prefixes = tuple(metadata.info.get(FOREIGN_TABLE_PREFIXES, ()))

    def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        if type_ != "table" or name is None:
            return True
        return name != ledger.LEDGER_TABLE and not name.startswith(prefixes)

    return include_name


def timeout_statements(settings: MigrationSettings) -> list[str]:
    """The ``SET`` statements every migration session starts with (and the offline SQL too)."""
    return [
        f"SET lock_timeout = '{int(settings.lock_timeout * 1000)}ms'",
        f"SET statement_timeout = '{int(settings.statement_timeout * 1000)}ms'",
    ]


def _command_name(migration_context: MigrationContext) -> str:
    # Alembic's commands hand env.py a closure such as ``upgrade.<locals>.upgrade``;
    # its outer name tells whether the command writes the schema.
    fn = migration_context._migrations_fn
    return getattr(fn, "__qualname__", "").split(".", 1)[0]


def _plan(migration_context: MigrationContext) -> list:
    """The steps the current command would run now (pure: reads one table)."""
    heads = migration_context.get_current_heads()
    return list(migration_context._migrations_fn(heads, migration_context))


def _step_revision(info: MigrationInfo) -> str:
    if info.is_stamp:
        return ",".join(info.destination_revision_ids) or "base"
    return info.up_revision_id or "base"


class _Ledgerkeeper:
    """Records each applied step in the ledger from Alembic's ``on_version_apply`` hook."""

    def __init__(self, stamp_direction: str = "stamp") -> None:
        self.mark = time.monotonic()
        # ``flask db baseline`` stamps too, but its row says "baseline".
        self.stamp_direction = stamp_direction

    def __call__(self, *, ctx: MigrationContext, step: MigrationInfo, heads: set, run_args: dict) -> None:
        revision = _step_revision(step)
        script = ctx.script.get_revision(step.up_revision_id) if (ctx.script and not step.is_stamp) else None
        path = Path(script.path) if script is not None else None
        direction = self.stamp_direction if step.is_stamp else ("up" if step.is_upgrade else "down")
        elapsed_ms = int((time.monotonic() - self.mark) * 1000)
        ledger.record(
            ctx.connection,
            ledger.LedgerEntry(
                revision=revision,
                down_revisions=tuple(step.down_revision_ids) if not step.is_stamp else tuple(step.source_revision_ids),
                direction=direction,
                message=script.doc if script is not None else None,
                filename=path.name if path is not None else None,
                checksum=file_checksum(path) if path is not None else None,
                source=path.read_text(encoding="utf-8") if path is not None else None,
                duration_ms=elapsed_ms,
            ),
        )
        verb = {"up": "applied", "down": "reverted"}.get(direction, "stamped")
        log.info("%s %s in %d ms", verb, revision, elapsed_ms)
        self.mark = time.monotonic()


def _blockers(connection: Connection, statement: str | None) -> str:
    """Describe the sessions holding locks on tables named in ``statement``."""
    rows = connection.execute(
        text(
            "SELECT DISTINCT c.relname, l.pid, coalesce(a.application_name, '') AS app, "
            "coalesce(a.state, '') AS state FROM pg_locks l "
            "JOIN pg_class c ON c.oid = l.relation "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.granted AND l.pid <> pg_backend_pid() AND c.relkind IN ('r', 'p', 'i') "
            "AND c.relnamespace = 'public'::regnamespace"
        )
    ).all()
    connection.rollback()
    named = [r for r in rows if statement and r.relname in statement] or rows
    if not named:
        return "a session that has since finished"
    return "; ".join(f"table {r.relname} locked by pid {r.pid} ({r.app or '-'}, {r.state or '-'})" for r in named)


def _next_revision(migration_context: MigrationContext) -> str:
    try:
        steps = _plan(migration_context)
    except Exception:  # the plan is only for the message; never mask the real error
        return "?"
    return _step_revision(steps[0].info) if steps else "?"


def _run_with_retries(environment: EnvironmentContext, connection: Connection, settings: MigrationSettings) -> None:
    """Run the planned migrations, retrying a step that hit ``lock_timeout``."""
    migration_context = environment.get_context()
    attempt = 0
    while True:
        try:
            with environment.begin_transaction():
                environment.run_migrations()
            return
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != LOCK_NOT_AVAILABLE:
                raise
            if connection.in_transaction():
                connection.rollback()
            revision = _next_revision(migration_context)
            who = _blockers(connection, exc.statement)
            attempt += 1
            if attempt > settings.lock_retries:
                raise MigrationFailed(
                    f"database migration: revision {revision} failed: lock_timeout "
                    f"({settings.lock_timeout:g}s) hit {attempt} times, giving up; {who}. "
                    "The schema is unchanged at the previous revision."
                ) from None
            pause = min(2**attempt * 0.5, 30.0)
            log.warning(
                "revision %s hit lock_timeout (%gs); %s; retry %d/%d in %.1fs",
                revision,
                settings.lock_timeout,
                who,
                attempt,
                settings.lock_retries,
                pause,
            )
            time.sleep(pause)


def migration_engine(default_engine: Engine, settings: MigrationSettings) -> Engine:
    """The engine migrations run on: ``MIGRATION_DATABASE_URL`` if set (bypassing a
    transaction-pooling PgBouncer, which breaks session advisory locks), else the app's."""
    url = settings.migration_database_url
    if url is None and default_engine.dialect.name != "sqlite":
        return default_engine
    engine = create_engine(normalise_database_url(url) if url else default_engine.url, poolclass=pool.NullPool)
    if engine.dialect.name == "sqlite":
        _make_sqlite_ddl_transactional(engine)
    return engine


def _make_sqlite_ddl_transactional(engine: Engine) -> None:
    # Python's sqlite3 module never emits BEGIN before DDL, so a failing
    # revision would leave its first statements applied. SQLAlchemy's
    # documented recipe: let SQLAlchemy emit BEGIN itself.
    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN")


def run_online(
    environment: EnvironmentContext,
    engine: Engine,
    configure: Callable[..., None],
    settings: MigrationSettings,
) -> None:
    """Run the current Alembic command against ``engine`` safely (see the module docstring)."""
    postgres = is_postgresql(engine.url)
    with engine.connect() as connection:
        if postgres:
            application_name = f"migration {socket.gethostname()}:{os.getpid()}"[:63]
            connection.execute(text("SELECT set_config('application_name', :n, false)"), {"n": application_name})
            for statement in timeout_statements(settings):
                connection.execute(text(statement))
            if connection.dialect.server_version_info >= (14,):
                # A killed migration process is noticed within a second and its
                # statement cancelled, instead of holding its table locks until
                # the statement would have finished.
                connection.execute(text("SET client_connection_check_interval = '1s'"))
            connection.commit()
        keeper = _Ledgerkeeper(environment.config.attributes.get("ledger_direction", "stamp"))
        configure(connection, on_version_apply=keeper)
        migration_context = environment.get_context()
        if _command_name(migration_context) not in _WRITING_COMMANDS:
            with environment.begin_transaction():
                environment.run_migrations()
            return
        if not _plan(migration_context):
            connection.rollback()
            return
        connection.rollback()
        if postgres:
            with migration_lock(connection, settings.lock_wait):
                ledger.ensure_table(connection)
                connection.commit()
                keeper.mark = time.monotonic()
                _run_with_retries(environment, connection, settings)
        else:
            ledger.ensure_table(connection)
            connection.commit()
            keeper.mark = time.monotonic()
            _run_with_retries(environment, connection, settings)


def run_offline(environment: EnvironmentContext, url: str, configure_kwargs: dict, settings: MigrationSettings) -> None:
    """Emit the SQL of the current command; PostgreSQL output starts with our timeouts."""
    url = environment.config.attributes.get("offline_url", url)
    environment.configure(url=url, literal_binds=True, **configure_kwargs)
    if is_postgresql(url):
        for statement in timeout_statements(settings):
            environment.execute(statement)
    with environment.begin_transaction():
        environment.run_migrations()
