"""Pod start at head: entrypoint.sh against the seed-style peer, launch to first /readyz 200.

What it measures, on a database already at head, with one gunicorn worker
(WEB_CONCURRENCY=1), the two alternating run after run:

1. launch to the first ``/readyz`` 200 of ``./entrypoint.sh`` (one Python
   process: wait, report, fast path at head, drift check, gunicorn in-process)
   against ``bench/peers/seed_entrypoint.sh`` (``flask db upgrade && exec
   gunicorn -c gunicorn.conf.py "app:create_app()"``: two imports of the app);
   goal: ratio <= 0.65;
2. the pre-start work alone, each in a fresh process: what the entrypoint does
   before serving (``safe_migrations.startup.prepare()``) and the peer's no-op
   ``flask db upgrade``, both against ``python -c "import app"``;
3. ``prepare()`` called again in this (warm) process: its database work alone.

Run::

    .venv/bin/python bench/startup.py            # full: 6 runs each
    BENCH_QUICK=1 .venv/bin/python bench/startup.py

``BENCH_DATABASE_URL`` names the PostgreSQL server (default
postgresql://postgres@127.0.0.1:5432/test); ``BENCH_RUNS`` overrides the run count.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, session, sizes
from bench.report import Series
from tests.helpers import BIN, PREPARE, REPO, child_env, flask, free_port, launch, run, stop, wait_for_http

SEED = REPO / "bench" / "peers" / "seed_entrypoint.sh"


def launch_to_ready(command: list[str], database_url: str, cwd: Path = REPO) -> float:
    """Seconds from launching ``command`` to its first /readyz 200; the process is killed after."""
    port = free_port()
    env = child_env(database_url, PORT=str(port), WEB_CONCURRENCY="1", HOST="127.0.0.1")
    output = session.temp_dir("bench-start-") / "output.log"
    started = time.perf_counter()
    process = launch(command, cwd=cwd, env=env, output=output)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", process, timeout=60, poll=0.01)
        return time.perf_counter() - started
    except AssertionError as exc:
        log = output.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{command[0]} never became ready ({exc}):\n{log}") from exc
    finally:
        stop(process)


def process_seconds(args: list[str], database_url: str) -> float:
    return run(args, database_url=database_url).check().seconds


def warm_prepare(database_url: str, runs: int) -> Series:
    """prepare() again and again in this process: imports paid, only its database work left."""
    from app import create_app
    from safe_migrations.settings import MigrationSettings
    from safe_migrations.startup import prepare

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url})
    settings = MigrationSettings.from_env({})
    prepare(app, settings)  # first call loads the scripts and the metadata
    series = Series("prepare() in a warm process")
    for _ in range(runs):
        started = time.perf_counter()
        prepare(app, settings)
        series.values.append(time.perf_counter() - started)
    return series


def main() -> int:
    session.begin("bench/startup.py", __doc__)
    runs = int(os.environ.get("BENCH_RUNS") or sizes.size(6, 4, 1))
    python = str(BIN / "python")
    with session.temp_database() as url:
        flask(url, "db", "upgrade").check()
        ours, peer = "entrypoint.sh (ours)", "seed_entrypoint.sh (peer)"
        launch = report.alternate(
            runs,
            {
                ours: lambda: launch_to_ready(["./entrypoint.sh"], url),
                peer: lambda: launch_to_ready([str(SEED)], url),
            },
        )
        report.series_table(
            f"Launch to first /readyz 200 at head, WEB_CONCURRENCY=1 ({runs} alternating runs)",
            [launch[ours], launch[peer]],
            launch[peer],
        )
        ratio = launch[ours].median / launch[peer].median

        import_app, prestart, seed_upgrade = "python -c 'import app'", "prepare() (ours)", "flask db upgrade (peer)"
        pre = report.alternate(
            runs,
            {
                import_app: lambda: process_seconds([python, "-c", "import app"], url),
                prestart: lambda: process_seconds([python, "-c", PREPARE], url),
                seed_upgrade: lambda: process_seconds([str(BIN / "flask"), "db", "upgrade"], url),
            },
        )
        warm = warm_prepare(url, max(runs * 3, 3))
        report.series_table(
            f"Pre-start work alone, each in a fresh process ({runs} alternating runs); peer: import app",
            [pre[prestart], pre[seed_upgrade], pre[import_app], warm],
            pre[import_app],
        )
        print(
            f"\nprepare() costs {pre[prestart].median - pre[import_app].median:+.3f} s over a bare import "
            f"(warm: {warm.median * 1000:.1f} ms of database work)."
        )
    print()
    report.goal("launch-to-ready ratio entrypoint.sh / seed peer (median)", ratio, 0.65)
    return 0


if __name__ == "__main__":
    sys.exit(main())
