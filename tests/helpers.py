"""Shared test helpers: real subprocesses, free ports, waiting for HTTP."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from sqlalchemy import create_engine, pool, text

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
REVISION_FILES = sorted((REPO / "migrations" / "versions").glob("*.py"))


def child_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child process: ours, with the venv first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("FLASK_APP", None)
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run(args: list[str], *, cwd: Path = REPO, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Run a command to completion, capturing text output."""
    return subprocess.run(
        args, cwd=cwd, env=child_env(**env), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def flask(database_url: str, *args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    """``flask ARGS`` as a developer types it, against ``database_url``."""
    return run([str(BIN / "flask"), *args], cwd=cwd, database_url=database_url, **env)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float = 30, status: int = 200) -> requests.Response:
    """Poll ``url`` until it answers ``status``; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} answered")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == status:
                return response
            last = response.status_code
        except (requests.ConnectionError, requests.Timeout) as exc:  # busy machine: keep polling
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer {status} within {timeout}s (last: {last})")


def copy_repository(target: Path, *, without_revisions: list[str] = ()) -> Path:
    """A copy of the project's code and migrations (no venv, no instance data)."""
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "instance", "__pycache__", ".pytest_cache", ".ruff_cache", "backups"
    )
    shutil.copytree(REPO, target, ignore=ignore)
    for revision in without_revisions:
        for path in (target / "migrations" / "versions").glob(f"*{revision}*.py"):
            path.unlink()
    return target


# Shipped revisions, oldest first (file names sort by creation).
REVISIONS = [path.name.split("_")[2] for path in REVISION_FILES]
HEAD = REVISIONS[-1]


def add_revision(
    repo: Path,
    revision: str,
    upgrade: str,
    downgrade: str = "pass",
    *,
    down_revision: str | tuple[str, ...] | None = HEAD,
    header: str = "",
    message: str = "Test revision",
    branch_labels: tuple[str, ...] | None = None,
    depends_on: str | None = None,
) -> Path:
    """Write a revision file into a repository copy; bodies are indented Python source."""

    def indent(body: str) -> str:
        return "\n".join("    " + line for line in body.strip("\n").splitlines())

    path = repo / "migrations" / "versions" / f"29990101_000000_{revision}_test.py"
    path.write_text(
        f'"""{message}"""\n'
        "from alembic import op\nimport sqlalchemy as sa\n"
        f"{header}\n"
        f"revision = {revision!r}\ndown_revision = {down_revision!r}\nbranch_labels = {branch_labels!r}\n"
        f"depends_on = {depends_on!r}\n\n\n"
        f"def upgrade():\n{indent(upgrade)}\n\n\ndef downgrade():\n{indent(downgrade)}\n"
    )
    return path


def start_flask(database_url: str, *args: str, cwd: Path = REPO, **env: str) -> subprocess.Popen:
    """``flask ARGS`` running in the background; its log (stderr) is readable line by line."""
    return subprocess.Popen(
        [str(BIN / "flask"), *args],
        cwd=cwd,
        env=child_env(database_url, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def query(url: str, sql: str) -> list[tuple]:
    """All rows of one query, on a connection of its own."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql)).all()]
    finally:
        engine.dispose()


def scalar(url: str, sql: str):
    """The first column of the first row of one query (None when there is none)."""
    rows = query(url, sql)
    return rows[0][0] if rows else None


def execute(url: str, *statements: str) -> None:
    """Run statements in one committed transaction."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()
