"""The expand revision of a rename on a big table: how long it stalls writers, vs the load alone and a naive copy.

Set-up: a database at head with ``market_alarm_log`` seeded with 1,000,000
rows (BENCH_QUICK: 50,000), set-based. The rename is ``market_alarm_log.message``
(TEXT NOT NULL) to ``body``; its expand revision is the one
``flask db migrate --rename market_alarm_log.message:body`` writes for a copy
of the models that maps the new column (generated in this run). While a load
of four threads (read by id, read by market, insert naming ``message`` as the
previous image does, single-row update) runs, each row of the table runs one of:

- ours: ``alembic upgrade`` to the expand revision, in this process through
  Alembic's Python API on the real app (env.py, runtime, gates): the new
  column, the sync trigger, the batched copy, the validated NOT NULL check;
- peer (naive expand): the same column and trigger, then one
  ``UPDATE ... SET body = message`` of every row in the same transaction;
- load alone (baseline), as long as ours took.

Reported: seconds, the longest write (insert or update) and the longest
request of the load, p99, errors; and after each, the rows whose ``body``
differs from ``message`` (writes during the copy included: must be 0).
Goal: the longest write during ours exceeds the baseline's by < 100 ms (the
backfill bench's goal). Between rows the expand is downgraded and the table
vacuumed (not timed).

Run::

    .venv/bin/python bench/rename.py
    BENCH_QUICK=1 .venv/bin/python bench/rename.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_ROWS`` overrides the row count.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load, report, session, sizes
from bench.load import Measured, Request
from tests.helpers import HEAD, copy_repository, execute, flask, generate_rename, query, scalar

RENAME = "market_alarm_log.message:body"
# The new image's models: MarketAlarmLog.message maps a column named body.
NEW_MODEL = (
    "    message: Mapped[str] = mapped_column(Text)\n",
    '    message: Mapped[str] = mapped_column("body", Text)\n',
)
OURS, PEER, BASE = "expand revision of --rename (ours)", "naive expand: one UPDATE of all rows", "load alone"
WRITES = ("insert", "update")


def expand_revision(base: Path) -> tuple[Path, str]:
    """The expand revision ``flask db migrate --rename`` writes, alone in a folder; (folder, its id)."""
    repo = copy_repository(base / "repo")
    models = repo / "models.py"
    text = models.read_text()
    if NEW_MODEL[0] not in text:
        raise RuntimeError("models.py no longer maps market_alarm_log.message as bench/rename.py expects")
    models.write_text(text.replace(*NEW_MODEL))
    expand, _ = generate_rename(repo, (RENAME,), "Rename market_alarm_log.message to body")
    folder = base / "revisions"
    folder.mkdir()
    (path,) = (repo / "migrations" / "versions").glob(f"*_{expand}_*.py")
    shutil.copy(path, folder)
    return folder, expand


def naive_expand(url: str) -> None:
    """The same column and trigger, and the copy as one UPDATE in the same transaction."""
    from safe_migrations.rename_steps import sync_name

    name = sync_name("market_alarm_log", "message", "body")
    execute(
        url,
        "ALTER TABLE market_alarm_log ADD COLUMN body TEXT",
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.body IS NULL THEN NEW.body := NEW.message; END IF; RETURN NEW; END $$",
        f"CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON market_alarm_log FOR EACH ROW EXECUTE FUNCTION {name}()",
        "UPDATE market_alarm_log SET body = message",
    )


def undo_naive(url: str) -> None:
    from safe_migrations.rename_steps import sync_name

    name = sync_name("market_alarm_log", "message", "body")
    table = "market_alarm_log"
    execute(url, f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()", f"ALTER TABLE {table} DROP body")


def longest(requests: list[Request], kinds: tuple[str, ...] | None = None) -> float:
    chosen = [r.latency for r in requests if kinds is None or r.kind in kinds]
    return max(chosen, default=float("nan"))


def main() -> int:
    session.begin("bench/rename.py", __doc__)
    rows = int(os.environ.get("BENCH_ROWS") or sizes.size(1_000_000, 50_000, 2_000))
    workers = load.alarm_log_load(rows)

    from alembic import command

    from tests.support.inprocess import migration_config

    folder, expand = expand_revision(session.temp_dir("rename-"))
    results: dict[str, Measured] = {}
    differing: dict[str, int] = {}
    with session.temp_database() as url:
        flask(url, "db", "upgrade").check()
        print(f"\nseeded {rows:,} rows in {load.seed_alarm_log(url, rows):.1f}s", flush=True)
        with migration_config(url, folder) as config:
            results[OURS] = load.measure_under_load(url, workers, lambda: command.upgrade(config, expand))
            differing[OURS] = scalar(url, "SELECT count(*) FROM market_alarm_log WHERE body IS DISTINCT FROM message")
            config.attributes["confirm_data_loss"] = True  # body's values are message's
            command.downgrade(config, HEAD)
        query(url, "VACUUM market_alarm_log")
        results[BASE] = load.measure_under_load(url, workers, lambda: time.sleep(results[OURS].seconds))
        results[PEER] = load.measure_under_load(url, workers, lambda: naive_expand(url))
        differing[PEER] = scalar(url, "SELECT count(*) FROM market_alarm_log WHERE body IS DISTINCT FROM message")
        undo_naive(url)

    table = []
    for name in (OURS, PEER, BASE):
        measured = results[name]
        table.append(
            [
                name,
                measured.seconds,
                longest(measured.requests, WRITES) * 1000,
                longest(measured.requests) * 1000,
                measured.stall.p99 * 1000,
                measured.stall.requests,
                measured.stall.errors,
                differing.get(name, "-"),
            ]
        )
    report.print_table(
        f"Expand of a rename on {rows:,} rows under load (one run each; the machine may be shared: see the baseline)",
        [
            "how",
            "seconds",
            "longest write ms",
            "longest request ms",
            "p99 ms",
            "requests",
            "errors",
            "rows where body <> message",
        ],
        table,
    )
    print()
    above = (longest(results[OURS].requests, WRITES) - longest(results[BASE].requests, WRITES)) * 1000
    report.goal("expand: longest write above the load alone, ms", above, 100)
    report.goal("expand: rows whose body differs from message afterwards", differing[OURS], 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
