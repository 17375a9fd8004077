"""A benchmark's session: its heading, and the clean-up of everything it starts, however it ends.

Every benchmark creates its own uniquely named PostgreSQL databases on the
server named by ``BENCH_DATABASE_URL`` (default: the local test server) and
drops them when it ends. Every process it starts (``tests.helpers.launch``)
runs in its own process group and is killed when the benchmark ends, by exit
or by SIGINT/SIGTERM/SIGHUP; its temporary folders are removed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from bench.sizes import MODE
from tests import helpers

ADMIN_URL = helpers.server_url("BENCH_DATABASE_URL")

_databases: list[str] = []
_temp_dirs: list[Path] = []


def begin(name: str, doc: str | None) -> None:
    """Print the benchmark's heading; clean up on any signal from now on."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    summary = doc.strip().splitlines()[0] if doc else name
    print(f"## {name} ({MODE} mode, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})\n\n{summary}")
    sys.stdout.flush()


def temp_dir(prefix: str = "bench-") -> Path:
    """A fresh temporary folder, removed when the benchmark ends."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _temp_dirs.append(path)
    return path


def copy_repository() -> Path:
    """A temporary copy of the repository (removed when the benchmark ends)."""
    return helpers.copy_repository(temp_dir() / "repo")


def create_database() -> str:
    """A fresh, empty database; returns its URL. Dropped at exit at the latest."""
    url = helpers.create_database(ADMIN_URL, "bench_")
    _databases.append(url)
    return url


def drop_database(url: str) -> None:
    helpers.drop_database(ADMIN_URL, url)
    if url in _databases:
        _databases.remove(url)


@contextlib.contextmanager
def temp_database() -> Iterator[str]:
    """A fresh database for the ``with`` block, dropped afterwards."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


def _cleanup() -> None:
    helpers.stop_all()
    for url in list(_databases):
        with contextlib.suppress(Exception):
            drop_database(url)
    for path in _temp_dirs:
        shutil.rmtree(path, ignore_errors=True)


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    _cleanup()
    sys.exit(128 + signum)


atexit.register(_cleanup)
