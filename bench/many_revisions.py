"""Start-up cost of a long history: 300 trivial revisions against the shipped few, at head.

In a temporary copy of the repository, 300 trivial revisions are chained after
the shipped head (each runs ``op.execute("SELECT 1")``: no schema change, no
lint finding). Two databases are brought to head: one with the 300-revision
copy, one with the shipped repository. Then, alternating, in fresh processes:

- a no-op ``flask db upgrade`` at head;
- the entrypoint's pre-start work at head (``safe_migrations.startup.prepare()``:
  wait, report, ledger check of applied files, fast path, drift check).

Reported: median/min/max of each and the ratio long history / shipped
(goal <= 1.2x for both). Also shown once: applying the whole long history.

Run::

    .venv/bin/python bench/many_revisions.py
    BENCH_QUICK=1 .venv/bin/python bench/many_revisions.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_REVISIONS`` and
``BENCH_RUNS`` override the number of generated revisions and of runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, session, sizes
from bench.startup import PREPARE
from tests.helpers import BIN, HEAD, REPO, REVISIONS, add_revision, flask, query, run


def add_trivial_revisions(repo: Path, count: int) -> str:
    """Chain ``count`` trivial revisions after the shipped head; return the new head."""
    down = HEAD
    for index in range(1, count + 1):
        revision = f"bench{index:07d}"
        noop = 'op.execute("SELECT 1")'
        message = f"Bench revision {index}: no schema change"
        add_revision(
            repo, revision, noop, noop, down_revision=down, message=message, file_prefix=f"29990101_{index:06d}"
        )
        down = revision
    return down


def timed(repo: Path, url: str, *args: str) -> float:
    return run(args, cwd=repo, database_url=url, timeout=600).check().seconds


def main() -> int:
    session.begin("bench/many_revisions.py", __doc__)
    count = int(os.environ.get("BENCH_REVISIONS") or sizes.size(300, 300, 5))
    runs = int(os.environ.get("BENCH_RUNS") or sizes.size(6, 3, 1))
    long_repo = session.copy_repository()
    new_head = add_trivial_revisions(long_repo, count)
    shipped = len(REVISIONS)
    flask_bin, python = str(BIN / "flask"), str(BIN / "python")
    with session.temp_database() as long_db, session.temp_database() as short_db:
        apply_long = flask(long_db, "db", "upgrade", cwd=long_repo, timeout=600).check().seconds
        apply_short = flask(short_db, "db", "upgrade").check().seconds
        assert query(long_db, "SELECT version_num FROM alembic_version") == [(new_head,)]
        report.print_table(
            "Applying the whole history once (empty database to head, one `flask db upgrade`)",
            ["history", "revisions", "seconds"],
            [[f"{count} generated + shipped", count + shipped, apply_long], ["shipped", shipped, apply_short]],
        )
        long_upgrade = f"flask db upgrade, {count + shipped} revisions"
        short_upgrade = f"flask db upgrade, shipped {shipped}"
        long_prepare, short_prepare = f"prepare(), {count + shipped} revisions", f"prepare(), shipped {shipped}"
        series = report.alternate(
            runs,
            {
                long_upgrade: lambda: timed(long_repo, long_db, flask_bin, "db", "upgrade"),
                short_upgrade: lambda: timed(REPO, short_db, flask_bin, "db", "upgrade"),
                long_prepare: lambda: timed(long_repo, long_db, python, "-c", PREPARE),
                short_prepare: lambda: timed(REPO, short_db, python, "-c", PREPARE),
            },
        )
    report.series_table(
        f"No-op `flask db upgrade` at head ({runs} alternating runs); peer: the shipped history",
        [series[long_upgrade], series[short_upgrade]],
        series[short_upgrade],
    )
    report.series_table(
        f"Entrypoint pre-start work prepare() at head ({runs} alternating runs); peer: the shipped history",
        [series[long_prepare], series[short_prepare]],
        series[short_prepare],
    )
    print()
    report.goal(
        f"no-op flask db upgrade, {count + shipped} / {shipped} revisions (median)",
        series[long_upgrade].median / series[short_upgrade].median,
        1.2,
    )
    report.goal(
        f"prepare() at head, {count + shipped} / {shipped} revisions (median)",
        series[long_prepare].median / series[short_prepare].median,
        1.2,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
