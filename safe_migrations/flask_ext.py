"""Wiring the toolset into a Flask app that uses Flask-Migrate."""

from __future__ import annotations

from alembic.script import ScriptDirectory
from flask import Flask

from safe_migrations.scripts import script_directory

_SCRIPTS_KEY = "safe_migrations.scripts"


def init_app(app: Flask) -> None:
    """Attach the toolset to ``app`` (after ``Migrate.init_app``): the extra ``flask db`` commands."""
    from safe_migrations import cli  # the CLI pulls in click and the commands

    cli.register(app)


def image_scripts(app: Flask) -> ScriptDirectory:
    """The migration scripts this image ships, loaded once per process (for readiness checks)."""
    scripts = app.extensions.get(_SCRIPTS_KEY)
    if scripts is None:
        scripts = app.extensions[_SCRIPTS_KEY] = script_directory(app)
    return scripts
