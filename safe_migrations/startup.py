"""Container start-up: wait for the database, migrate under the lock, then serve.

Run by ``entrypoint.sh`` as ``python -m safe_migrations.startup "app:create_app()"``.
Everything happens in this one process: the app is imported once, the
database checked and migrated, and then this process becomes gunicorn's master
serving the app it already holds. Every line it prints about migrations
contains "database migration"; every failure is one line and a non-zero exit.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any

from alembic import command
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate.cli import db as db_group
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Engine

from safe_migrations import gates, ledger
from safe_migrations import log as log_setup
from safe_migrations import post_deploy as contract
from safe_migrations import status as schema
from safe_migrations.drift import model_drift
from safe_migrations.findings import MigrationError
from safe_migrations.log import first_line, log
from safe_migrations.scripts import alembic_config, script_directory
from safe_migrations.server import read_settings as read_server_settings
from safe_migrations.server import serve as run_gunicorn
from safe_migrations.settings import MigrationSettings, SettingsError
from safe_migrations.startup_budget import Budget, long_statements, over_budget_line
from safe_migrations.urls import DatabaseURLError, mask_password, normalise_database_url

EXIT_CONFIG = 2
EXIT_FAILED = 1


class StartupError(MigrationError):
    """Start-up cannot continue; the message is the one line the operator sees."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load_app(spec: str) -> Flask:
    """Import ``module:factory()`` or ``module:attribute`` and return the Flask app."""
    module_name, _, expression = spec.partition(":")
    module = importlib.import_module(module_name)
    name = expression or "create_app()"
    if name.endswith("()"):
        return getattr(module, name[:-2])()
    return getattr(module, name)


def wait_for_database(engine: Engine, timeout: float) -> None:
    """Connect with bounded exponential backoff; raise StartupError after ``timeout`` seconds."""
    masked = mask_password(engine.url.render_as_string(hide_password=False))
    started, delay, attempt = time.monotonic(), 0.25, 0
    while True:
        attempt += 1
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            if attempt > 1:
                log.info("database at %s is reachable after %.1fs", masked, time.monotonic() - started)
            return
        except Exception as exc:  # any failure to connect is retried until the deadline
            waited = time.monotonic() - started
            reason = first_line(exc)
            if waited + delay > timeout:
                raise StartupError(
                    f"database migration: database at {masked} not reachable after {waited:.1f}s "
                    f"(DB_WAIT_TIMEOUT={timeout:g}): {reason}"
                ) from None
            log.info("waiting for database at %s (attempt %d, %.1fs): %s", masked, attempt, waited, reason)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _report(state: schema.SchemaStatus) -> None:
    log.info("current revision %s, image head %s", state.current_label, state.head_label)
    if state.pending:
        log.info("%d pending: %s", len(state.pending), ", ".join(state.pending))


def _report_post_deploy(script: ScriptDirectory, engine: Engine) -> None:
    """Start-up never applies post-deploy revisions; it says which ones wait for the job."""
    with engine.connect() as connection:
        waiting = contract.pending(script, schema.current_heads(connection))
    if waiting:
        log.info("%s", contract.pending_line(waiting))


# States in which this image must not start; the message comes from the one table of states.
_REFUSED_STATES = (schema.MULTIPLE_HEADS, schema.UNKNOWN, schema.NO_HISTORY, schema.STAMPED_EMPTY)


def migrate(app: Flask, engine: Engine, settings: MigrationSettings) -> None:
    """Bring the database to this image's head, or explain in one line why not.

    The gates themselves (destructive steps, edited history, the lock and the
    re-read after it) live in the migration runtime, so ``flask db upgrade``
    and Alembic's Python API get the very same ones; start-up adds the report
    and the states in which a pod must not serve.
    """
    config = alembic_config(app)
    script = ScriptDirectory.from_config(config)
    with engine.connect() as connection:
        state = schema.read_status(connection, script)
        _report(state)
        if state.state in _REFUSED_STATES:
            raise StartupError(f"database migration: {schema.explain(state).as_line()}")
        if state.state == schema.AHEAD:
            message = schema.explain(state).message
            if settings.on_ahead == "fail":
                raise StartupError(f"database migration: {message}; refusing to start (MIGRATION_ON_AHEAD=fail)")
            log.warning("%s; starting anyway (MIGRATION_ON_AHEAD=warn)", message)
            return
        if state.state == schema.STAMPED_BACKWARDS:
            said = schema.explain(state)
            if not state.only_stamped_backwards:  # the image needs revisions that never ran, too
                raise StartupError(f"database migration: {said.as_line()}")
            # The schema is the image's (the ledger says every revision ran): serve, and never run them twice.
            log.warning("%s; not running them again, starting (fix: %s)", said.message, said.fix)
            return
        try:
            gates.refuse_edited_history(connection, script, settings)
        except MigrationError as exc:
            raise StartupError(f"database migration: {exc}") from None
        refuse_stranded(script, state.current)
        if state.state in (schema.AT_HEAD, schema.POST_DEPLOY_PENDING):
            log.info("database is at head; nothing to apply")
            _report_post_deploy(script, engine)
            return
    refuse_over_budget(app, script, state, settings)
    try:
        with app.app_context():
            # The ordinary chain only: post-deploy revisions wait for the post-deploy
            # job, and no ordinary revision needs one (safe_migrations/post_deploy.py).
            for target in contract.cached_graph(script).trunk_heads:
                command.upgrade(config, target)
    except StartupError:
        raise
    except MigrationError as exc:
        raise StartupError(f"database migration: {exc}") from None
    except Exception as exc:
        with engine.connect() as connection:
            after = schema.read_status(connection, script)
        failed = after.pending[0] if after.pending else "?"
        raise StartupError(
            f"database migration: upgrade failed at {failed}: {first_line(exc)}; "
            f"the database stays at {after.current_label}"
        ) from None
    _report_post_deploy(script, engine)


def refuse_stranded(script: ScriptDirectory, current: tuple[str, ...]) -> None:
    """Never serve when an ordinary revision this image needs waits behind a pending post-deploy one."""
    found = contract.stranded(script, current)
    if not found:
        return
    revision, post_deploy = next(iter(found.items()))
    trunk = ", ".join(contract.cached_graph(script).trunk_heads) or "base"
    raise StartupError(
        f"database migration: ordinary revision {revision} is pending behind pending post-deploy revision "
        f"{post_deploy}: start-up never applies a post-deploy revision, and this image needs {revision}; "
        f"run the post-deploy step first (`flask db upgrade`, the post-deploy job), or move {revision} onto "
        f"the ordinary chain (down_revision = {trunk!r})"
    )


def refuse_over_budget(
    app: Flask, script: ScriptDirectory, state: schema.SchemaStatus, settings: MigrationSettings
) -> None:
    """Refuse a migration whose worst case outlasts the startupProbe (see safe_migrations.startup_budget)."""
    if settings.startup_probe is None:
        return
    with app.app_context():
        pending = schema.pending_scripts(script, state.current)
        budget = Budget(long_statements(alembic_config(app), pending), settings)
    if not budget.fits:
        trunk = ",".join(contract.cached_graph(script).trunk_heads)
        raise StartupError(f"database migration: {over_budget_line(budget, trunk, 'rehearse' in db_group.commands)}")
    log.info("worst case fits the startupProbe: %s", budget.arithmetic())


def report_drift(app: Flask, engine: Engine) -> None:
    """Warn when the models and the migrated schema disagree. The pod never writes migrations."""
    metadata = app.extensions["migrate"].db.metadata
    with engine.connect() as connection:
        if contract.pending(script_directory(app), schema.current_heads(connection)):
            # The models already match the schema after the post-deploy job:
            # comparing now would only list what the pending revisions remove.
            log.info("models are compared with the schema once the post-deploy revisions are applied")
            return
        drift = model_drift(connection, metadata)
        stamped = ledger.last_step_was_stamp(connection) if drift else None
    if not drift:
        return
    if stamped:
        # The migrations were not run here: a new migration would only paper over it.
        log.warning(
            "the schema differs from the migrations (%s): the ledger's last step is a stamp at %s, which ran "
            "nothing; bring the schema there (flask db stamp back to what ran, then flask db upgrade)",
            "; ".join(drift),
            stamped,
        )
        return
    log.warning(
        "models and migrations disagree (%s); a developer must add a migration with ./init_migration.sh",
        "; ".join(drift),
    )


def prepare(app: Flask, settings: MigrationSettings) -> None:
    """Start-up before serving: wait for the database, report, migrate, check drift (see entrypoint.sh)."""
    url = settings.migration_database_url or app.config["SQLALCHEMY_DATABASE_URI"]
    engine = create_engine(normalise_database_url(url), poolclass=pool.NullPool)
    try:
        wait_for_database(engine, settings.db_wait_timeout)
        migrate(app, engine, settings)
        report_drift(app, engine)
    finally:
        engine.dispose()


def configure_logging() -> None:
    """The one log format (safe_migrations/log.py): every migration line says "database migration"."""
    log_setup.configure()


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m safe_migrations.startup [APP_SPEC]``; returns an exit code."""
    argv = sys.argv[1:] if argv is None else argv
    spec = argv[0] if argv else "app:create_app()"
    try:
        configure_logging()
    except SettingsError as exc:  # a bad LOG_FORMAT: nothing to log with yet
        print(f"database migration: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    # Server settings first: a bad PORT or WEB_CONCURRENCY stops start-up (one
    # line, exit 2) before the database is touched.
    server_settings = read_server_settings("gunicorn.conf.py")
    try:
        settings = MigrationSettings.from_env()
        try:
            app = load_app(spec)
        except (ValueError, DatabaseURLError) as exc:  # configuration errors name the variable
            raise StartupError(f"database migration: configuration error: {exc}", EXIT_CONFIG) from None
        prepare(app, settings)
    except SettingsError as exc:
        log.error("database migration: configuration error: %s", exc)
        return EXIT_CONFIG
    except StartupError as exc:
        log.error("%s", exc)
        return exc.exit_code
    serve(app, server_settings)
    return 0


def serve(app: Flask, server_settings: dict[str, Any]) -> None:
    """Become gunicorn's master for ``app``; pooled connections are dropped before workers fork."""
    with app.app_context():
        for engine in app.extensions["migrate"].db.engines.values():
            engine.dispose()
    run_gunicorn(app, server_settings)


def _main() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    _main()
