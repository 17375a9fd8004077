"""The batched backfill helper against one big UPDATE, under a concurrent load.

Set-up: a database at head with ``market_alarm_log`` seeded with 1,000,000 rows
(BENCH_QUICK: 50,000), set-based. Each run rewrites ``sent_to_devices`` of
every row, alternating:

- ours: ``safe_migrations.backfill.backfill`` on an autocommit connection
  with its default batch size (key-range batches, one commit per batch);
- the same helper with ``batch_size=1000`` (shorter row locks per batch).
  The helper is called with the keyword arguments ``pending=`` and
  ``batch_size=`` only, which stay valid as its batch sizing evolves;
- peer: one ``UPDATE market_alarm_log SET sent_to_devices = k`` of all rows in
  a single transaction.

A load of four threads (read by id, read by market, insert, single-row
update) runs during each; reported: rows/s, seconds, and the longest stall and
p99 of the load's requests, beside the load alone (baseline). Goal: the
backfill's longest stall < 100 ms. The table is vacuumed between runs (not timed).

Run::

    .venv/bin/python bench/backfill.py
    BENCH_QUICK=1 .venv/bin/python bench/backfill.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_ROWS`` and
``BENCH_RUNS`` override the row count and the runs.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load, report, session, sizes
from bench.load import Stall
from bench.report import Series
from tests.helpers import flask, query

OURS, PEER, BASE = "backfill() helper, default batch size (ours)", "single UPDATE of all rows (peer)", "load alone"
SMALL = "backfill() helper, batch_size=1,000"


def main() -> int:
    session.begin("bench/backfill.py", __doc__)
    rows = int(os.environ.get("BENCH_ROWS") or sizes.size(1_000_000, 50_000, 2_000))
    runs = int(os.environ.get("BENCH_RUNS") or sizes.size(2, 2, 1))
    workers = load.alarm_log_load(rows)

    from sqlalchemy import create_engine, pool, text

    from safe_migrations.backfill import backfill

    with session.temp_database() as url:
        flask(url, "db", "upgrade").check()
        print(f"\nseeded {rows:,} rows in {load.seed_alarm_log(url, rows):.1f}s")
        engine = create_engine(url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
        value = iter(range(1, 1000))

        def helper() -> int:
            k = next(value)
            with engine.connect() as connection:
                return backfill(
                    connection, "market_alarm_log", f"sent_to_devices = {k}", pending=f"sent_to_devices <> {k}"
                )

        def small_batches() -> int:
            k = next(value)
            with engine.connect() as connection:
                return backfill(
                    connection,
                    "market_alarm_log",
                    f"sent_to_devices = {k}",
                    pending=f"sent_to_devices <> {k}",
                    batch_size=1_000,
                )

        def single_update() -> int:
            k = next(value)
            with engine.connect() as connection, connection.begin():
                result = connection.execute(
                    text(f"UPDATE market_alarm_log SET sent_to_devices = {k} WHERE sent_to_devices <> {k}")
                )
                return result.rowcount

        def idle() -> int:
            time.sleep(2.0)  # the baseline: the load alone, nothing updated
            return 0

        stalls: dict[str, list[Stall]] = {OURS: [], SMALL: [], PEER: [], BASE: []}
        speeds: dict[str, Series] = {OURS: Series(OURS), SMALL: Series(SMALL), PEER: Series(PEER)}
        seconds: dict[str, Series] = {name: Series(name) for name in stalls}
        for index in range(runs):
            order = [OURS, PEER, SMALL] if index % 2 == 0 else [SMALL, PEER, OURS]
            for name in [BASE, *order]:
                action = {
                    OURS: helper,
                    SMALL: small_batches,
                    PEER: single_update,
                    BASE: idle,
                }[name]
                measured = load.measure_under_load(url, workers, action)
                stall, updated, elapsed = measured.stall, measured.result, measured.seconds
                stalls[name].append(stall)
                seconds[name].values.append(elapsed)
                if name != BASE:
                    if updated < rows:
                        raise RuntimeError(f"{name} updated {updated} rows, expected at least {rows}")
                    speeds[name].values.append(updated / elapsed)
                    query(url, "VACUUM market_alarm_log")
            print(f"  ... round {index + 1}/{runs} done", flush=True)
        engine.dispose()

    table = []
    for name in (OURS, SMALL, PEER, BASE):
        longest = Series(name, [s.longest for s in stalls[name]])
        p99 = Series(name, [s.p99 for s in stalls[name]])
        speed = speeds.get(name)
        table.append(
            [
                name,
                len(stalls[name]),
                speed.median if speed else "-",
                speed.median / speeds[PEER].median if speed else "-",
                seconds[name].median,
                longest.median * 1000,
                longest.max * 1000,
                p99.median * 1000,
                sum(s.errors for s in stalls[name]),
            ]
        )
    report.print_table(
        f"Rewriting one column of {rows:,} rows under load ({runs} alternating runs)",
        [
            "how",
            "runs",
            "rows/s median",
            "rows/s ratio vs peer",
            "seconds median",
            "longest stall median ms",
            "longest stall max ms",
            "p99 median ms",
            "errors",
        ],
        table,
    )
    print()
    ours_longest = max(s.longest for s in stalls[OURS]) * 1000
    base_longest = max(s.longest for s in stalls[BASE]) * 1000
    report.goal("backfill() longest stall, ms (max over runs)", ours_longest, 100)
    small_longest = max(s.longest for s in stalls[SMALL]) * 1000
    print(
        f"(the load alone had a longest request of {base_longest:.0f} ms on this machine; "
        f"with batch_size=1,000 the longest stall was {small_longest:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
