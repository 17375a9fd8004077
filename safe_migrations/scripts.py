"""The migration scripts shipped with this image: loading them and fingerprinting them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Flask


def alembic_config(app: Flask) -> Config:
    """The Alembic config Flask-Migrate builds for ``app`` (its configure callbacks included)."""
    migrate = app.extensions["migrate"]
    with app.app_context():
        return migrate.migrate.get_config(migrate.directory)


def script_directory(app: Flask) -> ScriptDirectory:
    """The revision scripts of ``app``'s migrations folder."""
    return ScriptDirectory.from_config(alembic_config(app))


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a revision file, as recorded in the ledger."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shown_path(path: str | Path) -> str:
    """``path`` as a command run from here names it (``migrations/versions/...``), so advice can be pasted."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative
