"""``flask db backup``: a pg_dump before anything risky."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from safe_migrations.findings import MigrationError


def restore_command(target: str | Path) -> str:
    """How to restore a backup: the very command of the runbook (docs/runbooks.md, 4)."""
    return f'pg_restore --clean --if-exists --no-owner -d "$DATABASE_URL" {target}'


def backup_advice(url: str | URL) -> str:
    """What to do before a step that destroys data: ``flask db backup`` on PostgreSQL, a file copy on SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or "the database file"
        return f"copy the SQLite file first (`cp {database} {database}.bak`; flask db backup is for PostgreSQL)"
    return "run `flask db backup` first"


class BackupError(MigrationError):
    """The backup could not be written; the message says why and what to do."""


def backup_path(backup_dir: str | Path, database: str, revision: str, now: datetime | None = None) -> Path:
    """``BACKUP_DIR/<database>_<revision>_<UTC time>.dump``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(backup_dir) / f"{database}_{revision}_{stamp}.dump"


def libpq_environment(url: str) -> dict[str, str]:
    """This process's environment plus libpq's PG* variables for ``url``: the pg_ tools connect
    with them, so the password never appears on a command line (``ps``) or in a log."""
    parsed = make_url(url)
    env = dict(os.environ)
    for variable, value in (
        ("PGHOST", parsed.host),
        ("PGPORT", parsed.port),
        ("PGUSER", parsed.username),
        ("PGPASSWORD", parsed.password),
        ("PGDATABASE", parsed.database),
    ):
        if value is not None:
            env[variable] = str(value)
    return env


def pg_dump(url: str, target: Path, timeout: float = 3600) -> int:
    """Write a custom-format dump of the database at ``url`` to ``target``; return its size.

    Connection details go through :func:`libpq_environment`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise BackupError(
            f"flask db backup works on PostgreSQL only; this database is {parsed.get_backend_name()}: "
            "copy the SQLite file instead"
        )
    binary = shutil.which("pg_dump")
    if binary is None:
        raise BackupError("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    env = libpq_environment(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    result = subprocess.run(
        [binary, "--format=custom", f"--file={partial}", "--no-password"],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed (exit {result.returncode}): {result.stderr.strip()[:300]}")
    partial.rename(target)  # a reader never sees a half-written dump under the final name
    return target.stat().st_size
