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

from gunicorn.app.base import BaseApplication


class PreloadedApplication(BaseApplication):
    """A gunicorn application whose WSGI callable is already loaded."""

    def __init__(self, wsgi_app: Any, config_file: str | Path | None = "gunicorn.conf.py") -> None:
        self.wsgi_app = wsgi_app
        self.config_file = Path(config_file) if config_file else None
        super().__init__()

    def load_config(self) -> None:
        # The same settings file a plain ``gunicorn -c gunicorn.conf.py`` would read.
        if self.config_file is None or not self.config_file.exists():
            return
        for key, value in runpy.run_path(str(self.config_file)).items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> Any:
        return self.wsgi_app
