"""What ``migrations/env.py`` runs: Alembic's online/offline modes made safe for a fleet.

Every path goes through here: the entrypoint, ``flask db ...`` and Alembic's
Python command API (also with the caller's own connection in
``config.attributes["connection"]``, Alembic's cookbook recipe). Online, a
command that writes (upgrade, downgrade, stamp):

1. plans the revisions it would run, without any lock; with nothing to run
   it is done (the fast path of a fleet restart at head);
2. takes the database's advisory lock (PostgreSQL), so concurrent runners
   apply each revision exactly once, and plans again: another runner (maybe a
   newer image) may have moved the database while this one waited;
3. passes the gates (:mod:`safe_migrations.gates`): edited history, the
   gating revision checks, data a downgrade would destroy; a refusal applies
   nothing;
4. runs each revision in its own transaction with ``lock_timeout`` and
   ``statement_timeout`` set, recorded in the ledger inside that same
   transaction; a lock timeout is retried with backoff.

Read-only commands (current, check, autogenerate) take no lock. Offline
(``--sql``) the SQL is rendered and never crashes on a step that needs a
database; it says which revision to fix.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, pool, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from safe_migrations import gates, ledger, post_deploy, stamp_checks
from safe_migrations import index_validity as indexes
from safe_migrations import plan as plans
from safe_migrations import status as schema
from safe_migrations.blockers import describe_blockers
from safe_migrations.connection import connect
from safe_migrations.findings import MigrationError, MigrationRefused
from safe_migrations.lock import migration_lock, transaction_lock
from safe_migrations.log import first_line, log
from safe_migrations.observer import Observed, RunningRevision, StatementObserver
from safe_migrations.scripts import file_checksum
from safe_migrations.settings import MigrationSettings, retry_pause
from safe_migrations.urls import is_postgresql, normalise_database_url

# What env.py hands over: ``alembic.context``, the module that proxies the running EnvironmentContext.
Environment = EnvironmentContext | ModuleType

# A database URL used only to render offline SQL for the PostgreSQL linter;
# offline mode never connects.
OFFLINE_POSTGRES_URL = "postgresql+psycopg2://lint@localhost/lint"
LOCK_NOT_AVAILABLE = "55P03"
# A caller confirms a data-destroying downgrade with ``-x confirm_data_loss=yes``
# (``flask db downgrade --yes``) or ``config.attributes["confirm_data_loss"] = True``.
CONFIRM_DATA_LOSS = "confirm_data_loss"
# ``flask db upgrade --yes`` (``-x confirm_rerun=yes``): run again revisions the ledger
# records as applied, after a stamp moved alembic_version back (status.STAMPED_BACKWARDS).
CONFIRM_RERUN = "confirm_rerun"
# Set while revisions run inside a caller's own transaction: steps that would
# need to commit it (a concurrent index build) run as plain transactional DDL.
IN_CALLER_TRANSACTION = "safe_migrations.in_caller_transaction"
# Extra statement observer listeners (see safe_migrations.observer), e.g. the rehearsal's recorders.
STATEMENT_LISTENERS = "statement_listeners"
# A list here makes the statement gates collect their findings instead of refusing (lint).
STATEMENT_FINDINGS = "statement_findings"


class MigrationFailed(MigrationError):
    """A migration step failed; the one-line message names the revision, the cause and where the database stays."""


def timeout_statements(settings: MigrationSettings) -> list[str]:
    """The ``SET`` statements every migration session starts with (and the offline SQL too)."""
    return [
        f"SET lock_timeout = '{int(settings.lock_timeout * 1000)}ms'",
        f"SET statement_timeout = '{int(settings.statement_timeout * 1000)}ms'",
    ]


# --- the ledger ------------------------------------------------------------------------


def _step_revision(info: MigrationInfo) -> str:
    if info.is_stamp:
        return ",".join(info.destination_revision_ids) or "base"
    return info.up_revision_id or "base"


class Ledgerkeeper:
    """Records each applied step in the ledger from Alembic's public ``on_version_apply`` hook."""

    def __init__(self, stamp_direction: str = "stamp") -> None:
        self.mark = time.monotonic()
        # ``flask db baseline`` stamps too, but its row says "baseline".
        self.stamp_direction = stamp_direction
        self.done: list[str] = []
        # The indexes each revision builds, checked before the revision is recorded.
        self.indexes = indexes.IndexWatch()

    def __call__(
        self, ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
    ) -> None:
        revision = _step_revision(step)
        if ctx.as_sql or ctx.connection is None:  # offline (--sql): nothing to record
            self.done.append(revision)
            return
        direction = self.stamp_direction if step.is_stamp else ("up" if step.is_upgrade else "down")
        built = self.indexes.take()
        if direction == "up":  # never record an index build PostgreSQL left INVALID
            indexes.refuse_invalid(ctx.connection, built)
        self.done.append(revision)
        scripts, up_revision = ctx.script, step.up_revision_id
        script = scripts.get_revision(up_revision) if scripts and up_revision and not step.is_stamp else None
        path = Path(script.path) if script is not None else None
        if direction == "up" and path is not None and post_deploy.is_marked(path):
            direction = ledger.POST_DEPLOY
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
        verb = {"up": "applied", ledger.POST_DEPLOY: "applied post-deploy revision", "down": "reverted"}.get(
            direction, "stamped"
        )
        log.info("%s %s in %d ms", verb, revision, elapsed_ms, extra={"revision": revision})
        self.mark = time.monotonic()


# --- connections -----------------------------------------------------------------------


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
    def _no_implicit_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")


def prepare_session(connection: Connection, settings: MigrationSettings) -> None:
    """Name the session and set the migration timeouts (PostgreSQL; our own connections only)."""
    if not is_postgresql(connection.engine.url):
        return
    application_name = f"migration {socket.gethostname()}:{os.getpid()}"[:63]
    connection.execute(text("SELECT set_config('application_name', :n, false)"), {"n": application_name})
    for statement in timeout_statements(settings):
        connection.execute(text(statement))
    if (connection.dialect.server_version_info or (0,)) >= (14,):
        # A killed migration process is noticed within a second and its
        # statement cancelled, instead of holding its table locks until
        # the statement would have finished.
        connection.execute(text("SET client_connection_check_interval = '1s'"))
    connection.commit()


_TIMEOUTS = ("lock_timeout", "statement_timeout")


@contextmanager
def callers_session(connection: Connection, settings: MigrationSettings, *, owns_transactions: bool) -> Iterator[None]:
    """A caller's connection gets the migration timeouts for the run, and its own settings back after it.

    Inside the caller's transaction the ``SET`` is part of that transaction:
    if the caller rolls back, PostgreSQL restores the settings itself.
    """
    if not is_postgresql(connection.engine.url):
        yield
        return
    before = {name: connection.exec_driver_sql(f"SHOW {name}").scalar() for name in _TIMEOUTS}
    for statement in timeout_statements(settings):
        connection.execute(text(statement))
    if owns_transactions:
        connection.commit()
    try:
        yield
    finally:
        if not connection.closed:
            try:
                for name, value in before.items():
                    connection.execute(text("SELECT set_config(:name, :value, false)"), {"name": name, "value": value})
                if owns_transactions:
                    connection.commit()
            except DBAPIError:  # the caller's transaction failed: its rollback restores the settings
                pass


@dataclass
class RunConnection:
    """The connection a command runs on, and whether the runtime may end its transactions."""

    connection: Connection
    # False when the caller passed a connection already inside its own
    # transaction: then nothing here commits or rolls back; the caller does.
    owns_transactions: bool

    def end_reads(self) -> None:
        """Close the transaction our reads opened (never the caller's)."""
        if self.owns_transactions and self.connection.in_transaction():
            self.connection.rollback()

    def commit(self) -> None:
        if self.owns_transactions:
            self.connection.commit()

    @contextmanager
    def lock(self, settings: MigrationSettings) -> Iterator[None]:
        """The migration lock: session-level normally; transaction-level inside a caller's transaction."""
        if not is_postgresql(self.connection.engine.url):
            yield
        elif self.owns_transactions:
            with migration_lock(self.connection, settings.lock_wait):
                yield
        else:
            with transaction_lock(self.connection, settings.lock_wait):
                yield


# --- the jobs of an online run ---------------------------------------------------------


def run_online(
    environment: Environment,
    engine: Engine,
    configure: Callable[..., None],
    settings: MigrationSettings,
) -> None:
    """Run the current Alembic command safely (see the module docstring)."""
    given = environment.config.attributes.get("connection")
    if isinstance(given, Engine):  # some recipes pass an engine: it is the caller's, but the connection is ours
        engine, given = given, None
    if given is not None:
        owns_transactions = not given.in_transaction()
        with callers_session(given, settings, owns_transactions=owns_transactions):
            run_on_connection(environment, given, configure, settings, owns_transactions=owns_transactions)
        return
    with connect(engine) as connection:
        prepare_session(connection, settings)
        run_on_connection(environment, connection, configure, settings, owns_transactions=True)


def run_on_connection(
    environment: Environment,
    connection: Connection,
    configure: Callable[..., None],
    settings: MigrationSettings,
    *,
    owns_transactions: bool,
) -> None:
    """Configure Alembic on ``connection`` and run the command: read-only directly, writing ones gated."""
    keeper = Ledgerkeeper(environment.config.attributes.get("ledger_direction", "stamp"))
    configure(connection, on_version_apply=keeper)
    if not plans.writes(environment.get_context()):
        with environment.begin_transaction():
            environment.run_migrations()
        return
    keeper.indexes.attach(connection)
    try:
        run_writing(environment, RunConnection(connection, owns_transactions), keeper, settings)
    finally:
        keeper.indexes.detach(connection)


def decide(
    environment: Environment, connection: Connection, settings: MigrationSettings
) -> tuple[plans.Plan, schema.SchemaStatus] | None:
    """The plan of a writing command against the database as it is now (None: nothing to do).

    Edited history is refused here, before the emptiness of the plan is known:
    ``flask db upgrade`` on a database at head with an edited applied revision
    still says so.
    """
    context = environment.get_context()
    script = context.script
    assert script is not None  # env.py runs only within a command, which has its scripts
    status = schema.read_status(connection, script)
    kind = plans.command_kind(context, status.current)
    if kind is plans.Kind.UPGRADE and status.state == schema.AHEAD:
        message = schema.explain(status).message
        if settings.on_ahead == "fail":
            raise MigrationRefused(f"{message}; refusing to migrate (MIGRATION_ON_AHEAD=fail)")
        log.warning("%s; nothing to upgrade (MIGRATION_ON_AHEAD=warn)", message)
        return None
    if kind is not plans.Kind.STAMP and status.state == schema.UNKNOWN:
        raise MigrationFailed(schema.explain(status).as_line())
    if kind is plans.Kind.STAMP:
        refuse_unconfirmed_stamp(environment, connection, script, status)
    if kind is plans.Kind.UPGRADE and status.state == schema.STAMPED_BACKWARDS:
        if not confirmed(environment, CONFIRM_RERUN):
            raise MigrationRefused(f"{schema.explain(status).as_line()}; nothing was applied")
        log.warning("running again what the ledger records as applied: %s (confirmed)", ", ".join(status.recorded))
    if status.state == schema.MULTIPLE_HEADS and plans.destination(context) == "head":
        raise MigrationFailed(schema.explain(status).as_line())  # "heads" (every branch) stays allowed
    if kind is not plans.Kind.STAMP:
        gates.refuse_edited_history(connection, script, settings)
    try:
        planned = plans.plan(kind, plans.destination(context), script, status.current)
        if kind is plans.Kind.DOWNGRADE and len(status.current) > 1:
            refuse_ambiguous_downgrade(connection, script, planned, status.current)
    except MigrationError:
        raise
    except Exception as exc:  # an unreachable target: Alembic's message, in one line
        said = first_line(exc)
        if said.startswith("Ambiguous walk"):
            said = ambiguous_walk(script, status.current, plans.destination(context))
        raise MigrationFailed(f"{said}; the database stays at {status.current_label}") from None
    return planned, status


RELATIVE = re.compile(r"^-(\d+)$")


def resolve_relative_downgrade(connection: Connection, target: str, heads: tuple[str, ...]) -> str:
    """``-N`` from several heads means from the head applied last, by the ledger: ``HEAD@-N``.

    Refused when the ledger cannot tell which head came last. A target that is
    not relative, or a single head, is returned as it is.
    """
    if not RELATIVE.match(target) or len(heads) < 2:
        return target
    last = ledger.last_applied(connection, heads)
    if last is None:
        raise MigrationRefused(
            f"downgrade {target} from several heads ({', '.join(heads)}): the ledger cannot tell which was applied "
            f"last; name it: `flask db downgrade REVISION@{target}`; nothing was reverted"
        )
    return f"{last}@{target}"  # Alembic's branch-relative form: HEAD-N would mean everything below HEAD


def refuse_ambiguous_downgrade(
    connection: Connection, script: ScriptDirectory, planned: plans.Plan, heads: tuple[str, ...]
) -> None:
    """Let a downgrade from several heads through only when it reverts the head the ledger says came last."""
    wanted = resolve_relative_downgrade(connection, planned.destination, heads)
    if wanted == planned.destination:
        return
    expected = plans.plan(plans.Kind.DOWNGRADE, wanted, script, heads)
    if [s.revision for s in expected.scripts] != [s.revision for s in planned.scripts]:
        raise MigrationRefused(
            f"downgrade {planned.destination} from several heads ({', '.join(heads)}) would revert "
            f"{', '.join(s.revision for s in planned.scripts)}, but the ledger says {wanted.split('@')[0]} was "
            f"applied last; run `flask db downgrade {wanted}`; nothing was reverted"
        )
    log.info("downgrade %s: reverting %s, the head applied last (ledger)", planned.destination, wanted.split("@")[0])


def ambiguous_walk(script: ScriptDirectory, current: tuple[str, ...], target: str) -> str:
    """Alembic's bare "Ambiguous walk" for a relative step at a branch point, with the branches named."""
    graph = post_deploy.cached_graph(script)
    done = post_deploy.applied(script, current)
    branches = sorted(
        f"{rev.revision} ({rev.doc})"
        for rev in post_deploy.oldest_first(script)
        if rev.revision not in done and all(parent in done for parent in graph.parents[rev.revision])
    )
    return (
        f"Ambiguous walk: {target} from {','.join(current) or 'base'} could go to any of {', '.join(branches)}; "
        "name the revision to go to (flask db upgrade REVISION), or upgrade every branch: flask db upgrade heads"
    )


def confirmed(environment: Environment, key: str) -> bool:
    """True when the caller confirmed ``key``: ``-x KEY=yes`` (the CLI's ``--yes``) or ``config.attributes[KEY]``."""
    said = environment.get_x_argument(as_dictionary=True).get(key) in {"yes", "1", "true"}
    return said or environment.config.attributes.get(key) is True


def stamp_target(script: ScriptDirectory, label: str) -> tuple[str, ...]:
    """The revisions ``flask db stamp LABEL`` would record; an ambiguous ``head`` names the heads to choose from."""
    if label == "head" and len(script.get_heads()) > 1:
        heads = ", ".join(
            f"{rev.revision} ({'post-deploy chain' if post_deploy.is_marked(rev.path) else 'ordinary'})"
            for rev in (script.get_revision(head) for head in script.get_heads())
            if rev is not None
        )
        raise MigrationFailed(
            f"stamp {label}: the scripts have several heads ({heads}); stamp `heads` to record every chain as "
            "applied, or name one revision; nothing was stamped"
        )
    try:
        return tuple(rev.revision for rev in script.get_revisions(label.split(",") if "," in label else label))
    except Exception as exc:
        raise MigrationFailed(f"stamp {label}: {first_line(exc)}; nothing was stamped") from None


def refuse_unconfirmed_stamp(
    environment: Environment, connection: Connection, script: ScriptDirectory, status: schema.SchemaStatus
) -> None:
    """A stamp that would make the bookkeeping disagree with the database needs a confirmation (see stamp_checks)."""
    label = plans.destination(environment.get_context())
    target = stamp_target(script, label)
    problem = stamp_checks.stamp_problem(connection, script, status.current, target, label)
    if problem is None:
        return
    if confirmed(environment, stamp_checks.CONFIRM_STAMP):
        log.warning("%s (stamped anyway: confirmed)", problem)
        return
    raise MigrationRefused(f"{problem}; nothing was stamped (repeat with --yes to stamp anyway)")


def pass_gates(
    environment: Environment,
    session: RunConnection,
    planned: plans.Plan,
    status: schema.SchemaStatus,
) -> bool:
    """The gates on what the command would run (see :mod:`safe_migrations.gates`); True: data loss confirmed."""
    gates.refuse_failed_checks(planned, status.current_label)
    return gates.confirm_data_loss(
        session.connection,
        planned,
        confirmed=confirmed(environment, CONFIRM_DATA_LOSS),
        stays_at=status.current_label,
    )


def statement_observer(
    environment: Environment, planned: plans.Plan, keeper: Ledgerkeeper, *, data_loss_confirmed: bool
) -> StatementObserver:
    """The observer of the revisions ``planned`` runs, with the statement gates listening.

    The running revision is the first planned one the ledgerkeeper has not yet
    seen finish (Alembic's ``on_version_apply`` fires at the end of each).
    Listeners of other tools (the rehearsal) are added to the observer in
    ``config.attributes["statement_listeners"]``.
    """
    known: dict[str, RunningRevision] = {}
    upgrade = planned.kind is not plans.Kind.DOWNGRADE

    def running() -> RunningRevision | None:
        script = next((s for s in planned.scripts if s.revision not in keeper.done), None)
        if script is None or planned.kind is plans.Kind.STAMP:
            return None
        if script.revision not in known:
            known[script.revision] = RunningRevision(script.revision, Path(script.path), upgrade)
        return known[script.revision]

    version_table = environment.get_context().opts.get("version_table", "alembic_version")
    observer = StatementObserver(running, ignored_tables={version_table, ledger.LEDGER_TABLE})
    collect = environment.config.attributes.get(STATEMENT_FINDINGS)
    observer.add(gates.StatementGates(confirmed=lambda: data_loss_confirmed, collect=collect))
    for listener in environment.config.attributes.get(STATEMENT_LISTENERS, ()):
        observer.add(listener)
    return observer


def run_writing(
    environment: Environment, session: RunConnection, keeper: Ledgerkeeper, settings: MigrationSettings
) -> None:
    """Plan, lock, plan again, gate, then apply (see the module docstring)."""
    try:
        first = decide(environment, session.connection, settings)
    finally:
        session.end_reads()
    if first is None or _nothing_to_do(*first, waited=False):
        return
    with session.lock(settings):
        decided = decide(environment, session.connection, settings)
        if decided is None or _nothing_to_do(*decided, waited=True):
            session.end_reads()
            return
        planned, status = decided
        data_loss_confirmed = pass_gates(environment, session, planned, status)
        ledger.ensure_table(session.connection)
        session.commit()
        keeper.mark = time.monotonic()
        environment.config.attributes[IN_CALLER_TRANSACTION] = not session.owns_transactions
        started = time.monotonic()
        if not is_postgresql(session.connection.engine.url):  # see safe_migrations.observer: PostgreSQL's
            apply(environment, session, keeper, planned, settings)
        else:
            observer = statement_observer(environment, planned, keeper, data_loss_confirmed=data_loss_confirmed)
            with observer.watching(session.connection):
                apply(environment, session, keeper, planned, settings)
        _summary(session, keeper, planned, time.monotonic() - started)


def _nothing_to_do(planned: plans.Plan, status: schema.SchemaStatus, *, waited: bool) -> bool:
    """True (and the command's summary line logged) when the plan runs no revision."""
    if not planned.is_empty or planned.kind is plans.Kind.STAMP:
        return False
    if waited:
        log.info("another runner brought the database here while this one waited; nothing to apply")
    elif planned.kind is plans.Kind.UPGRADE:
        log.info("nothing to apply: the database is already at head %s", status.current_label)
    else:
        log.info("nothing to revert: the database stays at %s", status.current_label)
    return True


def _summary(session: RunConnection, keeper: Ledgerkeeper, planned: plans.Plan, seconds: float) -> None:
    """The command's last line: what it did and where the database is now."""
    try:
        now_at = ",".join(schema.current_heads(session.connection)) or "base"
    finally:
        session.end_reads()
    if planned.kind is plans.Kind.STAMP:
        log.info("stamp complete: the database is recorded at %s", now_at, extra={"revision": now_at})
        return
    verb = "applied" if planned.kind is plans.Kind.UPGRADE else "reverted"
    log.info(
        "%s complete: %s %d revision(s) in %.1fs; the database is at %s",
        planned.kind.value,
        verb,
        len(keeper.done),
        seconds,
        now_at,
        extra={"revision": now_at},
    )


def _failing_revision(planned: plans.Plan, keeper: Ledgerkeeper) -> str:
    remaining = [s.revision for s in planned.scripts if s.revision not in keeper.done]
    return remaining[0] if remaining else "?"


def _stays_at(session: RunConnection) -> str:
    if not session.owns_transactions:
        return "the caller's transaction state (it must roll back)"
    try:
        session.end_reads()
        heads = schema.current_heads(session.connection)
        session.end_reads()
        return ",".join(heads) or "base"
    except Exception:  # the connection is gone: say so rather than guess
        return "the last revision the ledger records"


def apply(
    environment: Environment,
    session: RunConnection,
    keeper: Ledgerkeeper,
    planned: plans.Plan,
    settings: MigrationSettings,
) -> None:
    """Run the planned revisions, retrying one that hit ``lock_timeout``; failures become one line."""
    attempt = 0
    while True:
        try:
            with environment.begin_transaction():
                environment.run_migrations()
            return
        except OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != LOCK_NOT_AVAILABLE:
                raise _failure(session, planned, keeper, exc) from exc
            if not session.owns_transactions:  # the caller's transaction is aborted: no retry is possible
                with session.connection.engine.connect() as side:
                    who = describe_blockers(side, exc.statement)
                raise MigrationFailed(
                    f"revision {_failing_revision(planned, keeper)} failed: lock_timeout "
                    f"({settings.lock_timeout:g}s) inside the caller's transaction, which cannot be retried; {who}; "
                    "the caller must roll back and run it again when the blocker is gone"
                ) from None
            session.end_reads()
            revision = _failing_revision(planned, keeper)
            who = describe_blockers(session.connection, exc.statement)
            attempt += 1
            if attempt > settings.lock_retries:
                left = indexes.left_behind(session.connection, keeper.indexes.take())
                session.end_reads()
                raise MigrationFailed(
                    f"revision {revision} failed: lock_timeout ({settings.lock_timeout:g}s) hit {attempt} times, "
                    f"giving up; {who}{left}; the database stays at {_stays_at(session)}"
                ) from None
            pause = retry_pause(attempt)
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
        except gates.StatementRefused as exc:
            revision = _failing_revision(planned, keeper)
            raise MigrationRefused(
                f"{exc}; nothing of revision {revision} was applied, the database stays at {_stays_at(session)}",
                exc.finding,
            ) from None
        except MigrationError:
            raise
        except Exception as exc:
            raise _failure(session, planned, keeper, exc) from exc


def _failure(session: RunConnection, planned: plans.Plan, keeper: Ledgerkeeper, exc: BaseException) -> MigrationFailed:
    revision = _failing_revision(planned, keeper)
    stays_at = _stays_at(session)
    left = indexes.left_behind(session.connection, keeper.indexes.take()) if session.owns_transactions else ""
    if left:
        session.end_reads()
    return MigrationFailed(f"revision {revision} failed: {first_line(exc)}{left}; the database stays at {stays_at}")


# --- offline ---------------------------------------------------------------------------


def run_offline(environment: Environment, url: str, configure_kwargs: dict, settings: MigrationSettings) -> None:
    """Emit the SQL of the current command; PostgreSQL output starts with our timeouts.

    PostgreSQL output passes the same statement gates as an online run (the
    observer reads what Alembic renders) and each post-deploy revision's SQL is
    preceded by a comment saying it runs after the rollout. A revision whose
    Python needs a real database (an ORM data migration that opens a
    ``Session`` on ``op.get_bind()``) cannot be rendered: that ends in one line
    naming the revision and the fix, never a traceback.

    The SQL is PostgreSQL's whatever database the app uses: production runs
    PostgreSQL, and SQLite's batch mode (the embedded default) cannot be
    rendered offline at all.
    """
    url = environment.config.attributes.get("offline_url", url if is_postgresql(url) else OFFLINE_POSTGRES_URL)
    progress = Ledgerkeeper()
    environment.configure(url=url, literal_binds=True, on_version_apply=progress, **configure_kwargs)
    if is_postgresql(url):
        planned = _offline_plan(environment)
        if planned is not None and planned.scripts:
            output = environment.config.output_buffer or sys.stdout
            observer = statement_observer(environment, planned, progress, data_loss_confirmed=False)
            observer.add(PostDeployNotes(output))
            environment.configure(
                url=url,
                literal_binds=True,
                on_version_apply=progress,
                output_buffer=observer.rendering(output),
                **configure_kwargs,
            )
        for statement in timeout_statements(settings):
            environment.execute(statement)
    try:
        with environment.begin_transaction():
            environment.run_migrations()
    except MigrationError:
        raise
    except Exception as exc:
        raise OfflineRenderError(_offline_revision(environment, progress), first_line(exc)) from exc


class PostDeployNotes:
    """Offline output says, before a post-deploy revision's first statement, when it runs."""

    def __init__(self, output: IO[str]) -> None:
        self.output = output
        self.noted: set[str] = set()

    def before(self, observed: Observed) -> None:
        revision = observed.revision
        if revision.post_deploy and revision.upgrade and revision.revision not in self.noted:
            self.noted.add(revision.revision)
            self.output.write(
                f"-- post-deploy revision {revision.revision}: apply it after the rollout (the post-deploy job, "
                "`flask db upgrade`), never at pod start-up\n\n"
            )

    def after(self, observed: Observed) -> None:
        return None


class OfflineRenderError(MigrationFailed):
    """A revision cannot be rendered as SQL (it needs a database)."""

    def __init__(self, revision: str, reason: str) -> None:
        super().__init__(
            f"revision {revision} cannot be rendered as SQL (--sql, lint): {reason}; a step that needs the "
            "database (a data migration) must skip offline mode: `if context.is_offline_mode(): return` "
            "(see the migration guide)"
        )
        self.revision = revision


def _offline_plan(environment: Environment) -> plans.Plan | None:
    try:
        start = environment.get_starting_revision_argument()
        heads = tuple(start) if isinstance(start, tuple | list) else ((start,) if start else ())
        context = environment.get_context()
        kind = plans.command_kind(context, heads)
        assert context.script is not None
        return plans.plan(kind, plans.destination(context), context.script, heads)
    except Exception:  # a command Alembic itself will explain
        return None


def _offline_revision(environment: Environment, progress: Ledgerkeeper) -> str:
    planned = _offline_plan(environment)
    remaining = [s.revision for s in planned.scripts if s.revision not in progress.done] if planned else []
    return remaining[0] if remaining else "?"
