"""Alembic environment for Flask-Migrate, made safe by the schema toolset.

Every path passes through here: the entrypoint, every ``flask db`` command and
Alembic's Python command API (a caller's own connection in
``config.attributes["connection"]`` is used as given). The toolset adds the
migration lock, the gates (destructive steps, edited history, data a downgrade
would destroy), per-migration transactions with lock/statement timeouts, the
ledger and offline SQL suitable for the linter; see ``safe_migrations/runtime.py``.
"""

import logging
from typing import Any

from alembic import context
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import current_app
from sqlalchemy.engine import Connection

from safe_migrations import log, post_deploy, rename, runtime
from safe_migrations.drift import compare_options
from safe_migrations.settings import MigrationSettings

config = context.config
# One log format for every process (safe_migrations/log.py; create_app set it up
# already, this keeps Alembic's Python API with another app alike). Callers that
# render SQL quietly (the linter) switch logging set-up off, as Alembic's cookbook shows.
if config.attributes.get("configure_logger", True):
    log.configure()
logger = logging.getLogger("alembic.env")

target_db = current_app.extensions["migrate"].db
settings = MigrationSettings.from_env()


def process_revision_directives(
    migration_context: MigrationContext, revision: object, directives: list[MigrationScript]
) -> None:
    """An autogenerate run that finds no change writes no file; a probable rename is
    decided first (safe_migrations/rename.py: expand + post-deploy contract, or refused);
    a new revision goes where the post-deploy graph wants it (safe_migrations/post_deploy.py)."""
    autogenerate = getattr(config.cmd_opts, "autogenerate", False)
    x_args = context.get_x_argument(as_dictionary=True)
    wanted = post_deploy.wants_post_deploy(x_args)
    contract = None
    if autogenerate:
        # A dropped + added column of one type: a rename? (asked, or decided by --rename/--no-rename)
        contract = rename.expand_and_contract(
            migration_context, directives, config.attributes, x_args, rename.terminal_question()
        )
    upgrade_ops = directives[0].upgrade_ops
    if autogenerate and upgrade_ops is not None and upgrade_ops.is_empty():
        directives[:] = []
        logger.info("No changes in schema detected; no migration file written.")
        return
    scripts = ScriptDirectory.from_config(config)
    post_deploy.place_new_revision(scripts, directives[0], wanted)
    # script.py.mako writes the post_deploy = True marker from this.
    config.attributes["post_deploy"] = wanted
    if contract is not None:
        if wanted:
            raise CommandError("--rename writes its own post-deploy revision; leave out -x post_deploy=1")
        post_deploy.place_new_revision(scripts, contract, True)
        contract.depends_on = directives[0].rev_id  # after the expand it contracts


def configure_arguments() -> dict[str, Any]:
    """The Alembic options every run uses, online and offline."""
    args = dict(current_app.extensions["migrate"].configure_args)
    args.setdefault("process_revision_directives", process_revision_directives)
    return {
        "target_metadata": target_db.metadata,
        # compare_type, compare_server_default, include_name: shared with
        # start-up's drift report and flask db baseline.
        **compare_options(target_db.metadata),
        # SQLite cannot ALTER most things; batch mode rebuilds the table there
        # and emits plain ALTERs on PostgreSQL, so every generated script runs
        # on both, whichever database it was generated against.
        "render_as_batch": True,
        # One transaction per revision: a failed revision rolls back alone and
        # the database stays at the previous one.
        "transaction_per_migration": True,
        **args,
    }


def run_migrations_online() -> None:
    engine = runtime.migration_engine(target_db.engine, settings)

    def configure(connection: Connection, **extra: Any) -> None:
        context.configure(connection=connection, **configure_arguments(), **extra)

    runtime.run_online(context, engine, configure, settings)


def run_migrations_offline() -> None:
    url = target_db.engine.url.render_as_string(hide_password=False)
    runtime.run_offline(context, url, configure_arguments(), settings)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
