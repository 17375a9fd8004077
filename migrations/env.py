"""Alembic environment for Flask-Migrate, made safe by the schema toolset.

Every ``flask db`` command passes through here. The toolset adds the migration
lock, per-migration transactions with lock/statement timeouts, the ledger and
offline SQL suitable for the linter; see ``safe_migrations/runtime.py``.
"""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

from safe_migrations import runtime
from safe_migrations.settings import MigrationSettings

config = context.config
# disable_existing_loggers=False: the entrypoint runs migrations in the same
# process as the app, whose loggers must keep working. Callers that render SQL
# quietly (the linter) switch logging set-up off, as Alembic's cookbook shows.
if config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

target_db = current_app.extensions["migrate"].db
settings = MigrationSettings.from_env()


def process_revision_directives(context, revision, directives):
    """An autogenerate run that finds no change writes no file."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected; no migration file written.")


def configure_arguments() -> dict:
    """The Alembic options every run uses, online and offline."""
    args = dict(current_app.extensions["migrate"].configure_args)
    args.setdefault("process_revision_directives", process_revision_directives)
    return {
        "target_metadata": target_db.metadata,
        "compare_type": True,
        "compare_server_default": True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table there
        # and emits plain ALTERs on PostgreSQL, so every generated script runs
        # on both, whichever database it was generated against.
        "render_as_batch": True,
        # One transaction per revision: a failed revision rolls back alone and
        # the database stays at the previous one.
        "transaction_per_migration": True,
        "include_name": runtime.include_name_for(target_db.metadata),
        **args,
    }


def run_migrations_online() -> None:
    engine = runtime.migration_engine(target_db.engine, settings)

    def configure(connection, **extra):
        context.configure(connection=connection, **configure_arguments(), **extra)

    runtime.run_online(context, engine, configure, settings)


def run_migrations_offline() -> None:
    url = target_db.engine.url.render_as_string(hide_password=False)
    runtime.run_offline(context, url, configure_arguments(), settings)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
