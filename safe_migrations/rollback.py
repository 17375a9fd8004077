"""Downgrading through revisions this image does not ship, from the ledger's stored source.

After ``kubectl rollout undo`` the older image meets a database migrated by a
newer one. Plain Alembic stops with "Can't locate revision". The ledger kept the
source of every applied revision, so we write the missing ones into a temporary
folder and hand it to Alembic as an extra version location for this command.
Only the chain from the database's current revision down to one this image
knows is materialised, so nothing foreign can become a new head.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from flask import Flask, current_app
from sqlalchemy import create_engine, pool

from safe_migrations import ledger
from safe_migrations.connection import connect
from safe_migrations.log import log
from safe_migrations.scripts import script_directory
from safe_migrations.status import current_heads, is_known

# app.config key: one more folder of revision files for the commands run while it is set.
EXTRA_VERSION_LOCATIONS = "safe_migrations.extra_version_locations"


def foreign_chain(app: Flask, url: str) -> list[dict]:
    """Ledger rows of the applied revisions this image lacks (newest first)."""
    script = script_directory(app)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with connect(engine) as connection:
            known = {rev.revision for rev in script.walk_revisions()}
            chain: list[dict] = []
            for head in current_heads(connection):
                if is_known(script, head):
                    continue
                rows = ledger.applied_chain(connection, head, known)
                if rows:
                    chain.extend(rows)
            return chain
    finally:
        engine.dispose()


def add_version_locations(config: Config) -> Config:
    """Flask-Migrate configure callback: add this command's temporary version folder."""
    extra = current_app.config.get(EXTRA_VERSION_LOCATIONS)
    if extra:
        # Flask-Migrate always sets script_location (its migrations directory).
        default = str(Path(config.get_main_option("script_location", "migrations")) / "versions")
        config.set_main_option("version_locations", os.pathsep.join([default, extra]))
    return config


@contextmanager
def stored_revisions_available(app: Flask, url: str) -> Iterator[list[str]]:
    """Within the block, Alembic can locate the applied revisions this image lacks."""
    chain = foreign_chain(app, url)
    if not chain:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="stored-revisions-") as folder:
        for row in chain:
            name = row["filename"] or f"{row['revision']}.py"
            (Path(folder) / name).write_text(row["source"], encoding="utf-8")
        revisions = [row["revision"] for row in chain]
        log.info(
            "database is ahead of this image; using the ledger's stored source of %s to downgrade",
            ", ".join(revisions),
        )
        app.config[EXTRA_VERSION_LOCATIONS] = folder
        try:
            yield revisions
        finally:
            app.config.pop(EXTRA_VERSION_LOCATIONS, None)
