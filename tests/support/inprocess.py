"""Alembic commands run in this process against the shipped migrations plus a folder of test revisions.

A ``flask db ...`` subprocess costs an interpreter start and an app import
(about a second); the same command through Alembic's Python API on the real
app goes through the same ``migrations/env.py`` and runtime, at a fraction of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config

from safe_migrations.scripts import alembic_config
from safe_migrations.urls import normalise_database_url
from tests.support.repository import VERSIONS


@contextmanager
def migration_config(url: str, extra_versions: Path | None = None) -> Iterator[Config]:
    """The app's Alembic config on ``url`` (inside its app context); ``extra_versions`` adds revisions."""
    from app import create_app  # the service: imported only by the tests that migrate it

    app = create_app({"SQLALCHEMY_DATABASE_URI": normalise_database_url(url)})
    with app.app_context():
        config = alembic_config(app)
        config.attributes["configure_logger"] = False
        if extra_versions is not None:
            config.set_main_option("version_locations", os.pathsep.join([str(VERSIONS), str(extra_versions)]))
        try:
            yield config
        finally:
            for engine in app.extensions["migrate"].db.engines.values():
                engine.dispose()
