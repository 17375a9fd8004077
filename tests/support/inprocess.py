"""Migration commands run in this process against the shipped migrations plus a folder of test revisions.

A ``flask db ...`` subprocess costs an interpreter start and an app import
(seconds on a loaded machine); the same command through Alembic's Python API,
or through the CLI with Flask's test runner, on the real app goes through the
same ``migrations/env.py`` and runtime, at a fraction of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from flask import Flask

from safe_migrations.rollback import EXTRA_VERSION_LOCATIONS
from safe_migrations.scripts import alembic_config
from safe_migrations.urls import normalise_database_url


@contextmanager
def migrating_app(url: str, extra_versions: Path | None = None) -> Iterator[Flask]:
    """The real app on ``url`` (inside its app context); ``extra_versions`` adds a folder of revisions."""
    from app import create_app  # the service: imported only by the tests that migrate it

    app = create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(url)})
    if extra_versions is not None:
        app.config[EXTRA_VERSION_LOCATIONS] = str(extra_versions)
    with app.app_context():
        try:
            yield app
        finally:
            for engine in app.extensions["migrate"].db.engines.values():
                engine.dispose()


@contextmanager
def migration_config(url: str, extra_versions: Path | None = None) -> Iterator[Config]:
    """The app's Alembic config on ``url``, as ``flask db`` builds it (see :func:`migrating_app`)."""
    with migrating_app(url, extra_versions) as app:
        config = alembic_config(app)
        config.attributes["configure_logger"] = False
        yield config
