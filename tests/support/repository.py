"""The checkout under test, and throw-away copies of it."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSIONS = REPO / "migrations" / "versions"
# Never copied: the virtualenv, git, local data and caches.
_NOT_COPIED = shutil.ignore_patterns(
    ".venv", ".git", "instance", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "backups"
)


def copy_repository(target: Path, *, without_revisions: Iterable[str] = ()) -> Path:
    """A copy of the project's code and migrations (no venv, no git, no instance data)."""
    shutil.copytree(REPO, target, ignore=_NOT_COPIED)
    for revision in without_revisions:
        for path in (target / "migrations" / "versions").glob(f"*{revision}*.py"):
            path.unlink()
    return target


# A model change that autogenerate detects: a nullable forecast.humidity after sky_code.
HUMIDITY = (
    "    sky_code: Mapped[int | None] = mapped_column(Integer)\n",
    "    sky_code: Mapped[int | None] = mapped_column(Integer)\n"
    "    humidity: Mapped[int | None] = mapped_column(Integer)\n",
)


def add_humidity(repo: Path) -> Path:
    """Add ``forecast.humidity`` to a copy's models.py; returns the models file."""
    models = repo / "models.py"
    models.write_text(models.read_text().replace(*HUMIDITY))
    return models
