"""Serving an already-imported WSGI app with gunicorn, in the same process.

The seed-style ``flask db upgrade && exec gunicorn app:...`` imports the app
twice. Here the process that checked and migrated the database goes on to be
gunicorn's master, so the pod pays for one import, and the master still
receives the pod's signals (SIGTERM: graceful shutdown).
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any


def read_settings(config_file: str | Path = "gunicorn.conf.py") -> dict[str, Any]:
    """The settings a plain ``gunicorn -c gunicorn.conf.py`` would read (none if the file is absent).

    The file validates PORT, WEB_CONCURRENCY, ... and exits with one line on a
    bad value. The entrypoint calls this first, before importing gunicorn (whose
    own WEB_CONCURRENCY default would crash on a bad value) and before migrating.
    """
    if not Path(config_file).exists():
        return {}
    return {key: value for key, value in runpy.run_path(str(config_file)).items() if not key.startswith("_")}


def serve(wsgi_app: Any, settings: dict[str, Any]) -> None:
    """Become gunicorn's master for ``wsgi_app`` in this process.

    gunicorn is imported only here, after ``read_settings`` validated its environment.
    """
    from gunicorn.app.base import BaseApplication

    class PreloadedApplication(BaseApplication):
        """A gunicorn application whose WSGI callable is already loaded."""

        def load_config(self) -> None:
            for key, value in settings.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key.lower(), value)

        def load(self) -> Any:
            return wsgi_app

    PreloadedApplication().run()
