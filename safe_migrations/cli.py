"""Additions to Flask-Migrate's ``flask db`` command group."""

from __future__ import annotations

import click
import flask_migrate
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate.cli import db as db_group

from safe_migrations import rollback
from safe_migrations.settings import MigrationSettings


def migration_url(app: Flask) -> str:
    """The URL migrations run against (``MIGRATION_DATABASE_URL`` or the app's)."""
    from safe_migrations.urls import normalise_database_url

    direct = MigrationSettings.from_env().migration_database_url
    return normalise_database_url(direct) if direct else app.config["SQLALCHEMY_DATABASE_URI"]


# Same options as Flask-Migrate's own ``downgrade``; ``ignore_unknown_options``
# lets the guide's ``flask db downgrade -1`` through (click would take ``-1``
# for an option and refuse it).
@click.command("downgrade", context_settings={"ignore_unknown_options": True})
@click.option("-d", "--directory", default=None, help='Migration script directory (default is "migrations")')
@click.option("--sql", is_flag=True, help="Don't emit SQL to database - dump to standard output instead")
@click.option("--tag", default=None, help='Arbitrary "tag" name - can be used by custom env.py scripts')
@click.option("-x", "--x-arg", multiple=True, help="Additional arguments consumed by custom env.py scripts")
@click.argument("revision", default="-1")
@with_appcontext
def downgrade(directory: str | None, sql: bool, tag: str | None, x_arg: tuple[str, ...], revision: str) -> None:
    """Revert to a previous version, e.g. ``-1`` or a revision id.

    Also works on a database migrated by a newer image: the revisions this
    image does not ship are reverted from the source stored in the ledger.
    """
    with rollback.stored_revisions_available(current_app, migration_url(current_app)):
        flask_migrate.downgrade(directory, revision, sql, tag, x_arg)


def register(app: Flask) -> None:
    """Add the toolset's commands to Flask-Migrate's ``db`` group (idempotent)."""
    db_group.add_command(downgrade)
    migrate = app.extensions["migrate"].migrate
    if rollback.add_version_locations not in migrate.configure_callbacks:
        migrate.configure(rollback.add_version_locations)
