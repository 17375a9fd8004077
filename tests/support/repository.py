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


# The column rename the rename tests and bench/rollout.py play: market.address becomes market.street_address.
# The model attribute (and so the API's "address" field) keeps its name and maps the new column.
STREET_ADDRESS = (
    "    address: Mapped[str | None] = mapped_column(String(255))\n",
    '    address: Mapped[str | None] = mapped_column("street_address", String(255))\n',
)


def rename_address_column(repo: Path) -> Path:
    """Map ``Market.address`` to a ``street_address`` column in a copy's models.py; returns the models file."""
    models = repo / "models.py"
    text = models.read_text()
    if STREET_ADDRESS[0] not in text:
        raise RuntimeError("models.py no longer maps market.address as tests/support/repository.py expects")
    models.write_text(text.replace(*STREET_ADDRESS))
    return models
