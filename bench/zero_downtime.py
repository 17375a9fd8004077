"""Migrations under traffic: the longest stall each step causes to a concurrent load.

Set-up: a database at the initial revision with ``market_alarm_log`` seeded with
1,000,000 rows (BENCH_QUICK: 50,000) by one set-based INSERT ... SELECT
generate_series. A load of four threads on their own connections (read by id,
read by market, insert, single-row update; every request's latency recorded)
runs during each measured step. Per step: the longest request latency (the
stall) and p99 among the requests in flight during the step.

Steps, each repeated and alternated with its baseline (the same load with no
DDL: ``flask db current`` for the steps run by ``flask``, a sleep for the ones
run in this process):

- shipped, through ``flask db`` (advisory lock, lock_timeout, ledger): every
  shipped step after the initial revision, read from ``migrations/versions``:
  each upgrade in order, then each downgrade back to the initial revision --
  today upgrade 43e96d39df75 (ADD COLUMN sent_to_devices NOT NULL DEFAULT 0),
  upgrade eed4f6347fc7 (two indexes built with
  ``safe_migrations.operations.create_index_concurrently``), downgrade
  eed4f6347fc7 (``drop_index_concurrently``), downgrade 43e96d39df75 (DROP COLUMN);
- naive counterparts of the same changes, plain SQL in one transaction: CREATE
  INDEX without CONCURRENTLY; ADD COLUMN NOT NULL with a volatile default
  ``(random()*10)::int`` (a table rewrite); a FOREIGN KEY without NOT VALID --
  and the safe FK pattern beside it (ADD ... NOT VALID, then VALIDATE);
- lock queue: another session holds a lock on the table (an open transaction
  that read it) while the first shipped step (``flask db upgrade 43e96d39df75``) starts: with
  MIGRATION_LOCK_TIMEOUT=0.5 the stall is bounded by it (the step gives up,
  retries later); with a lock_timeout of an hour the load queues behind the
  migration for as long as the other session holds its lock.

Goal: every shipped step keeps the longest stall under 100 ms above the baseline.

Run::

    .venv/bin/python bench/zero_downtime.py
    BENCH_QUICK=1 .venv/bin/python bench/zero_downtime.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_ROWS`` and
``BENCH_RUNS`` override the row count and the repetitions.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load, plots, report, session, sizes
from bench.load import WRITERS, Stall
from bench.report import Series
from tests.helpers import INITIAL, SHIPPED, flask, libpq

NAIVE = {
    "naive: CREATE INDEX (no CONCURRENTLY)": (
        ["CREATE INDEX ix_bench_naive ON market_alarm_log (target_date)"],
        ["DROP INDEX ix_bench_naive"],
    ),
    "naive: ADD COLUMN NOT NULL DEFAULT (random()*10)::int": (
        ["ALTER TABLE market_alarm_log ADD COLUMN bench_naive integer NOT NULL DEFAULT (random() * 10)::int"],
        ["ALTER TABLE market_alarm_log DROP COLUMN bench_naive"],
    ),
    "naive: ADD FOREIGN KEY (validating, no NOT VALID)": (
        ["ALTER TABLE market_alarm_log ADD CONSTRAINT fk_bench_naive FOREIGN KEY (market_id) REFERENCES market (id)"],
        ["ALTER TABLE market_alarm_log DROP CONSTRAINT fk_bench_naive"],
    ),
    "safe pattern: ADD FOREIGN KEY NOT VALID, then VALIDATE": (
        [
            "ALTER TABLE market_alarm_log ADD CONSTRAINT fk_bench_safe "
            "FOREIGN KEY (market_id) REFERENCES market (id) NOT VALID",
            "COMMIT",
            "ALTER TABLE market_alarm_log VALIDATE CONSTRAINT fk_bench_safe",
        ],
        ["ALTER TABLE market_alarm_log DROP CONSTRAINT fk_bench_safe"],
    ),
}


def shipped_steps() -> list[tuple[str, str, str]]:
    """Every shipped migration step after the initial one, as (label, command, target):
    each upgrade in order, then each downgrade back to the initial revision."""
    after = SHIPPED[1:]
    ups = [(f"shipped: upgrade {r.revision} ({r.title})", "upgrade", r.revision) for r in after]
    downs = [
        (f"shipped: downgrade {r.revision} ({r.title})", "downgrade", previous.revision)
        for previous, r in reversed(list(zip(SHIPPED, after, strict=False)))
    ]
    return ups + downs


STEPS = shipped_steps()
# The bench's seeded alarm log is disposable: its downgrades are confirmed (no terminal to ask on).
YES = {"upgrade": (), "downgrade": ("--yes",)}

BASE_FLASK, BASE_SLEEP = "baseline: load + `flask db current`", "baseline: load alone"


def run_sql(url: str, statements: list[str]) -> None:
    """Statements in one transaction (a literal "COMMIT" ends it and starts the next), no timeouts."""
    import psycopg2

    connection = psycopg2.connect(libpq(url))
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                if statement == "COMMIT":
                    connection.commit()
                else:
                    cursor.execute(statement)
        connection.commit()
    finally:
        connection.close()


def hold_table(url: str, seconds: float, holding: threading.Event) -> None:
    """Another session: an open transaction that read the table (ACCESS SHARE) for ``seconds``."""
    import psycopg2

    connection = psycopg2.connect(libpq(url), application_name="bench long reader")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM market_alarm_log WHERE id < 10")
            holding.set()
            time.sleep(seconds)
        connection.rollback()
    finally:
        connection.close()


def main() -> int:
    session.begin("bench/zero_downtime.py", __doc__)
    rows = int(os.environ.get("BENCH_ROWS") or sizes.size(1_000_000, 50_000, 2_000))
    runs = int(os.environ.get("BENCH_RUNS") or sizes.size(2, 2, 1))
    hold = float(sizes.size(4, 3, 2))
    workers = load.alarm_log_load(rows)
    stalls: dict[str, list[Stall]] = {}
    writes: dict[str, plots.Timeline] = {}  # the first run of each step, for the figure

    def measure(name: str, action: Callable[[], object]) -> None:
        measured = load.measure_under_load(url, workers, action)
        stalls.setdefault(name, []).append(measured.stall)
        timeline = [(r.start - measured.started, r.latency * 1000) for r in measured.requests if r.kind in WRITERS]
        writes.setdefault(name, timeline)

    with session.temp_database() as url:
        flask(url, "db", "upgrade", INITIAL).check()
        seeded = load.seed_alarm_log(url, rows)
        print(f"\nseeded {rows:,} rows in {seeded:.1f}s")
        for index in range(runs):
            naive = list(NAIVE.items()) if index % 2 == 0 else list(reversed(NAIVE.items()))
            for step, (name, command, target) in enumerate(STEPS):
                if step == 0 or not sizes.SMOKE:
                    measure(BASE_FLASK, lambda: flask(url, "db", "current").check())
                measure(
                    name,
                    lambda command=command, target=target: flask(
                        url, "db", command, target, *YES[command], timeout=600
                    ).check(),
                )
                naive_name, (apply, undo) = naive[step % len(naive)]
                if step == 0 or not sizes.SMOKE:
                    measure(BASE_SLEEP, lambda: time.sleep(1.0))
                measure(naive_name, lambda apply=apply: run_sql(url, apply))
                run_sql(url, undo)
            print(f"  ... round {index + 1}/{runs} done", flush=True)

        # Lock queue: another session holds the table while the shipped step starts.
        lock_rows, first = [], SHIPPED[1].revision
        for label, timeout in (("MIGRATION_LOCK_TIMEOUT=0.5", "0.5"), ("MIGRATION_LOCK_TIMEOUT=3600 (none)", "3600")):
            holding = threading.Event()
            holder = threading.Thread(target=hold_table, args=(url, hold, holding))
            outputs: list[str] = []

            def migrate(timeout=timeout, holder=holder, holding=holding, outputs=outputs) -> None:
                holder.start()
                holding.wait(10)
                upgraded = flask(url, "db", "upgrade", first, MIGRATION_LOCK_TIMEOUT=timeout, timeout=600)
                outputs.append(upgraded.check().output)
                holder.join()

            stall = load.measure_under_load(url, workers, migrate).stall
            flask(url, "db", "downgrade", INITIAL, *YES["downgrade"]).check()
            lock_rows.append(
                [
                    label,
                    f"{hold:g}",
                    stall.longest * 1000,
                    stall.p99 * 1000,
                    stall.requests,
                    outputs[0].count("hit lock_timeout"),
                ]
            )

    def summary(name: str) -> list[float]:
        values = stalls[name]
        longest = Series(name, [s.longest for s in values])
        return [
            len(values),
            longest.median * 1000,
            longest.max * 1000,
            Series(name, [s.p99 for s in values]).median * 1000,
            sum(s.requests for s in values) // len(values),
            sum(s.errors for s in values),
        ]

    base = {BASE_FLASK: summary(BASE_FLASK), BASE_SLEEP: summary(BASE_SLEEP)}
    rows_out, shipped_excess = [], []
    for name in [BASE_FLASK, BASE_SLEEP, *(s[0] for s in STEPS), *NAIVE]:
        values = summary(name)
        baseline = BASE_FLASK if name.startswith("shipped") else BASE_SLEEP
        excess = values[2] - base[baseline][2] if not name.startswith("baseline") else 0.0
        if name.startswith("shipped"):
            shipped_excess.append((name, excess))
        rows_out.append([name, *values, excess if not name.startswith("baseline") else "-"])
    report.print_table(
        f"Longest stall and p99 of the concurrent load during each step, {rows:,} rows ({runs} runs, alternated "
        "with the baseline)",
        [
            "step",
            "runs",
            "longest median ms",
            "longest max ms",
            "p99 median ms",
            "requests/run",
            "errors",
            "longest max - baseline ms",
        ],
        rows_out,
    )
    print(
        "\nBaseline for shipped steps: the load while `flask db current` runs (the same process start, no DDL); "
        "for the in-process naive steps: the load alone for 1 s."
    )
    report.print_table(
        f"Lock queue: the table held by another session while `flask db upgrade {first}` starts",
        ["migration", "held for s", "longest stall ms", "p99 ms", "requests", "lock_timeout retries"],
        lock_rows,
    )
    plots.stall_timelines(
        "zero_downtime_stall.png",
        f"Writes to market_alarm_log while each step runs ({rows:,} rows, {sizes.MODE} mode)",
        {
            "shipped steps, through `flask db` (lock_timeout, CONCURRENTLY)": {
                name: writes[name] for name in [BASE_FLASK, *(s[0] for s in STEPS)]
            },
            "the same changes as naive DDL, plain SQL": {name: writes[name] for name in [BASE_SLEEP, *NAIVE]},
        },
        "The longest INSERT or UPDATE of the concurrent load in flight in each 100 ms (first run of each step). "
        "Grey: the same load during `flask db current` / alone.",
    )
    print()
    for name, excess in shipped_excess:
        report.goal(f"{name}: longest stall above baseline, ms", excess, 100)
    report.goal("lock queue, MIGRATION_LOCK_TIMEOUT=0.5: longest stall ms", lock_rows[0][2], 500 + 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
