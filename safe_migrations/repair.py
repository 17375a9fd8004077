"""``flask db repair REVISION``: accept an edit of an applied revision that leaves its code unchanged.

The ledger keeps the checksum and source of every applied revision; an edited
file is refused by every writing command (edited history). An edit of the
docstrings, of comments or of the formatting changes the checksum but not what
the revision does: repair parses the ledger's stored source and the file as it
is now into Python syntax trees, without docstrings (comments and formatting
never reach the tree), and if they are the same records the new checksum (a
``repair`` row). Any other edit is refused, a data migration's too (its
offline rendering would only be a comment, so rendered SQL could not tell an
``UPDATE`` from a ``DELETE``): restore the file, and put the change in a new
revision.
"""

from __future__ import annotations

import ast
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from safe_migrations import ledger
from safe_migrations.connection import connect
from safe_migrations.findings import MigrationRefused
from safe_migrations.scripts import file_checksum, shown_path


class RepairRefused(MigrationRefused):
    """The revision cannot be repaired; the message says why and what to do instead."""


def code_of(source: str) -> str:
    """The module's syntax tree without docstrings, as text: equal for edits of docstrings, comments, layout."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and body:
            first = body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


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
    """Record the new checksum of ``revision`` if its code is unchanged; return what was done."""
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
        if code_of(path.read_text(encoding="utf-8")) != code_of(row["source"]):
            raise RepairRefused(
                f"the edit changes the code of {script.revision} ({path.name}), which the database already ran; "
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
        f"{script.revision} ({path.name}): the edit leaves its code unchanged; recorded the new checksum "
        "(ledger: repair)"
    )
