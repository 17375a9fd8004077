"""Does `flask db rehearse` forecast the writer stall a migration really causes? Forecast vs measured.

Set-up: a live database at the shipped head with ``market_alarm_log`` seeded
with 1,000,000 rows (BENCH_QUICK: 100,000). Six revisions are pending: three
naive ones -- a volatile-default ADD COLUMN (a table rewrite), a CREATE INDEX
without CONCURRENTLY, a validating FOREIGN KEY -- and the shipped safe
equivalents of each: ADD COLUMN with a constant default (as revision
43e96d39df75 ships it), ``safe_migrations.operations.create_index_concurrently``,
and a FOREIGN KEY added NOT VALID then validated outside the transaction.

1. ``flask db rehearse``'s engine (``safe_migrations.rehearse.rehearse``)
   rehearses them on a 1 % and on a 10 % sample; its wall time is measured;
2. then each revision runs for real, through the same runtime, while
   ``bench/load.py``'s four threads (two reads, insert, update) run against
   the table; the measured stall is the longest latency of a writing request
   in flight during the revision, next to the same load's longest write
   latency with no migration (the baseline, measured just before each).

Printed per revision: forecast stall at each sample size, measured stall,
and the ratio forecast / measured.
Goals: every naive (blocking) revision's forecast within a factor of 2 of
its measured stall at both sample sizes; every safe one forecast under 100 ms;
the rehearsal of all of them on the 10 % sample under 30 s.

Run::

    .venv/bin/python bench/rehearse.py
    BENCH_QUICK=1 .venv/bin/python bench/rehearse.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_ROWS`` overrides the row count.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command

from bench import load, report, session, sizes
from safe_migrations.rehearse import Rehearsal, rehearse
from safe_migrations.scripts import alembic_config
from tests.helpers import app_on, flask, migrations_with

CONCURRENTLY = "from safe_migrations.operations import create_index_concurrently"
# (revision, label, naive?, upgrade body, module header)
REVISIONS = [
    (
        "bench0000001",
        "naive: ADD COLUMN NOT NULL DEFAULT (random()*10)::int",
        True,
        'op.execute("ALTER TABLE market_alarm_log ADD COLUMN bench_naive integer NOT NULL '
        'DEFAULT (random() * 10)::int")',
        "",
    ),
    (
        "bench0000002",
        "naive: CREATE INDEX (no CONCURRENTLY)",
        True,
        'op.execute("CREATE INDEX ix_bench_naive ON market_alarm_log (target_date)")',
        "",
    ),
    (
        "bench0000003",
        "naive: ADD FOREIGN KEY (validating)",
        True,
        'op.execute("ALTER TABLE market_alarm_log ADD CONSTRAINT fk_bench_naive '
        'FOREIGN KEY (market_id) REFERENCES market (id)")',
        'reviewed_contract = "a benchmark: no previous image runs"',
    ),
    (
        "bench0000004",
        "safe: ADD COLUMN NOT NULL DEFAULT 0",
        False,
        'op.add_column("market_alarm_log", sa.Column("bench_safe", sa.Integer(), nullable=False, server_default="0"))',
        "",
    ),
    (
        "bench0000005",
        "safe: create_index_concurrently",
        False,
        'create_index_concurrently("ix_bench_safe", "market_alarm_log", ["target_date"])',
        CONCURRENTLY,
    ),
    (
        "bench0000006",
        "safe: ADD FOREIGN KEY NOT VALID, then VALIDATE",
        False,
        'op.execute("ALTER TABLE market_alarm_log ADD CONSTRAINT fk_bench_safe '
        'FOREIGN KEY (market_id) REFERENCES market (id) NOT VALID")\n'
        "with op.get_context().autocommit_block():\n"
        '    op.execute("ALTER TABLE market_alarm_log VALIDATE CONSTRAINT fk_bench_safe")',
        "",
    ),
]
SAMPLES = (0.01, 0.10)


def forecast_stall(rehearsal: Rehearsal, revision: str) -> float:
    """The revision's forecast writer stall (ms): its largest statement's."""
    (found,) = [r for r in rehearsal.revisions if r.revision == revision]
    assert found.error is None, found.error
    return max((s.stall_ms for s in found.statements), default=0.0)


def longest_write_ms(measured: load.Measured) -> float:
    return max((r.latency for r in measured.requests if r.kind in load.WRITERS), default=0.0) * 1000


def main() -> int:
    session.begin("bench/rehearse.py", __doc__)
    rows = int(os.environ.get("BENCH_ROWS") or sizes.size(1_000_000, 100_000, 5_000))
    workers = load.alarm_log_load(rows)
    with session.temp_database() as url:
        flask(url, "db", "upgrade").check()
        seeded = load.seed_alarm_log(url, rows)
        print(f"\nseeded {rows:,} rows in {seeded:.1f}s")
        migrations = migrations_with(session.temp_dir(), [(rev, body, header) for rev, _, _, body, header in REVISIONS])
        application = app_on(url, migrations)

        rehearsals: dict[float, Rehearsal] = {}
        seconds: dict[float, float] = {}
        for fraction in SAMPLES:
            started = time.perf_counter()
            with application.app_context():
                rehearsals[fraction] = rehearse(application, url, sample=fraction)
            seconds[fraction] = time.perf_counter() - started
            print(f"rehearsed on a {fraction:.0%} sample in {seconds[fraction]:.1f}s")
        print(f"\n```\n{rehearsals[SAMPLES[-1]].as_text()}\n```")

        config = alembic_config(application)
        config.attributes["configure_logger"] = False
        measured: dict[str, tuple[float, float, float]] = {}  # revision -> (baseline ms, stall ms, seconds)
        for revision, *_ in REVISIONS:
            baseline = load.measure_under_load(url, workers, lambda: time.sleep(1.0))

            def upgrade(revision: str = revision) -> None:
                with application.app_context():
                    command.upgrade(config, revision)

            run = load.measure_under_load(url, workers, upgrade)
            measured[revision] = (longest_write_ms(baseline), longest_write_ms(run), run.seconds)

    table, met = [], True
    ratios: dict[str, list[float]] = {}
    for revision, label, _naive, *_ in REVISIONS:
        baseline_ms, stall_ms, took = measured[revision]
        forecasts = [forecast_stall(rehearsals[f], revision) for f in SAMPLES]
        ratios[revision] = [f / stall_ms for f in forecasts]
        table.append([label, *forecasts, stall_ms, baseline_ms, took, *ratios[revision]])
    report.print_table(
        f"Writer stall: forecast by the rehearsal vs measured under load ({rows:,} rows)",
        [
            "revision",
            "forecast ms (1 %)",
            "forecast ms (10 %)",
            "measured stall ms",
            "baseline ms (no DDL)",
            "took s",
            "forecast/measured (1 %)",
            "forecast/measured (10 %)",
        ],
        table,
    )
    print()
    for revision, label, naive, *_ in REVISIONS:
        for fraction, ratio in zip(SAMPLES, ratios[revision], strict=True):
            if naive:
                off_by = max(ratio, 1 / ratio) if ratio > 0 else float("inf")
                met &= report.goal(f"{label}: forecast off by (x, {fraction:.0%} sample)", off_by, 2.0)
        if not naive:
            worst = max(forecast_stall(rehearsals[f], revision) for f in SAMPLES)
            met &= report.goal(f"{label}: forecast stall ms", worst, 100.0)
    met &= report.goal("rehearsal on the 10 % sample, seconds", seconds[SAMPLES[-1]], 30.0)
    return 0 if met or sizes.QUICK else 1


if __name__ == "__main__":
    sys.exit(main())
