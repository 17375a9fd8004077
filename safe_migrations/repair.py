"""``flask db repair REVISION``: accept an edit of an applied revision that leaves its SQL unchanged.

The ledger keeps the checksum and source of every applied revision; an edited
file is refused by every writing command (edited history). An edit of the
docstring, of comments or of the formatting changes the checksum but not what
the revision does: repair renders the revision's offline PostgreSQL SQL from
the ledger's stored source and from the file as it is now, and if they are the
same records the new checksum (a ``repair`` row). An edit that changes the SQL
is refused: restore the file, and put the change in a new revision.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from safe_migrations import ledger
from safe_migrations.connection import connect
from safe_migrations.lint import config_with_versions, render
from safe_migrations.scripts import file_checksum, shown_path


class RepairRefused(RuntimeError):
    """The revision cannot be repaired; the message says why and what to do instead."""


def _normalised(sql: str) -> list[str]:
    return [line.strip() for line in sql.splitlines() if line.strip()]


def _stored_sql(config: Config, scripts: ScriptDirectory, revision: str, row: dict) -> str:
    """The offline SQL of the revision as it was applied (the ledger's stored source)."""
    with tempfile.TemporaryDirectory(prefix="repair-") as folder:
        for script in scripts.walk_revisions():
            if script.revision != revision:
                shutil.copy(script.path, folder)
        (Path(folder) / (row["filename"] or f"{revision}.py")).write_text(row["source"], encoding="utf-8")
        stored = config_with_versions(config, folder)
        return render(stored, ScriptDirectory.from_config(stored).get_revision(revision)).sql


def restore(config: Config, url: str, revision: str) -> str:
    """Write the source the ledger kept for ``revision`` back into its file; return what was done."""
    path = Path(ScriptDirectory.from_config(config).get_revision(revision).path)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with connect(engine) as connection:
            row = ledger.latest_applications(connection, [revision]).get(revision)
    finally:
        engine.dispose()
    if row is None or not row["source"]:
        raise RepairRefused(f"the ledger keeps no source of {revision}; it was never applied to this database")
    path.write_text(row["source"], encoding="utf-8")
    return f"restored {shown_path(path)} from the ledger (the source applied at {row['applied_at']:%Y-%m-%d %H:%M} UTC)"


def repair(config: Config, url: str, revision: str) -> str:
    """Record the new checksum of ``revision`` if its SQL is unchanged; return what was done."""
    scripts = ScriptDirectory.from_config(config)
    script = scripts.get_revision(revision)
    path = Path(script.path)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            row = ledger.latest_applications(connection, [script.revision]).get(script.revision)
        if row is None or not row["source"] or not row["checksum"]:
            raise RepairRefused(
                f"revision {script.revision} has no recorded application with its source in the ledger; "
                "there is nothing to repair"
            )
        now = file_checksum(path)
        if now == row["checksum"]:
            return f"{script.revision} ({path.name}) is unchanged since it was applied; nothing to repair"
        current_sql = render(config, script).sql
        stored_sql = _stored_sql(config, scripts, script.revision, row)
        if _normalised(current_sql) != _normalised(stored_sql):
            raise RepairRefused(
                f"the edit changes the SQL of {script.revision} ({path.name}), which the database already ran; "
                f"restore the file (`git checkout -- {shown_path(path)}`, or `flask db repair {script.revision} "
                "--restore` to write back the source the ledger kept) and put the change in a new revision"
            )
        with engine.begin() as connection:
            ledger.record(
                connection,
                ledger.LedgerEntry(
                    revision=script.revision,
                    down_revisions=tuple(row["down_revisions"].split(",")) if row["down_revisions"] else (),
                    direction="repair",
                    message=script.doc,
                    filename=path.name,
                    checksum=now,
                    source=path.read_text(encoding="utf-8"),
                ),
            )
    finally:
        engine.dispose()
    return (
        f"{script.revision} ({path.name}): the edit leaves its SQL unchanged; recorded the new checksum "
        "(ledger: repair)"
    )
