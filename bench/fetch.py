"""`flask forecasts fetch` of both products against a stand-in KMA: cells/s, rows/s, whole fetch vs pure download.

Set-up: a fresh PostgreSQL database migrated by ``flask db upgrade``, 1,000
markets in 1,000 distinct grid cells (BENCH_QUICK: 200), and the local stand-in
of KMA's service (``python -m tests.kma_server``, in a process of its own)
answering each request after a fixed delay (BENCH_FETCH_DELAY, default 0.05 s)
with the documented JSON: for the short-term forecast (getVilageFcst) 67
forecast hours per cell, 810 values, one page; for the ultra-short-term one
(getUltraSrtFcst) 6 hours, 60 values.

Measured per product, alternating run by run (each run a new base time, so the
database holds more forecasts every run, as in production):

1. the whole fetch: ``flask forecasts fetch --product P --now ...`` as a
   subprocess, with KMA_CONCURRENCY=4; the seconds its summary line reports
   (downloads, parsing, checking and storing every cell, alarms included; not
   the interpreter start);
2. the pure download of the same pages at the same concurrency: the
   pipeline's own download (``weather.forecast_fetch.download``, the same
   source, client, caps and parsing) in this process, storing nothing.

Goal per product: whole fetch / pure download <= 1.2 (storing overlaps fetching).

Run::

    .venv/bin/python bench/fetch.py
    BENCH_QUICK=1 .venv/bin/python bench/fetch.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_CELLS``,
``BENCH_RUNS`` and ``BENCH_FETCH_DELAY`` (seconds per request) override the sizes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, session, sizes
from bench.report import Series
from tests.helpers import child_env, flask, launch, query, stop
from weather.times import KST

KEY = "bench+service/key=="
CONCURRENCY = 4
SUMMARY = re.compile(
    r"(\d+) cells ok, (\d+) failed; (\d+) rows stored; (\d+) alarms raised; \d+ items dropped; ([\d.]+) s"
)
PRODUCTS = ("short", "ultra")
# Each product's run: its first --now (today, KST) and the step to the next run's base time.
SCHEDULE = {"short": ((5, 11), timedelta(hours=3)), "ultra": ((10, 46), timedelta(hours=1))}


def start_stand_in(delay: float) -> tuple[subprocess.Popen[bytes], str]:
    """The stand-in KMA in its own process group; returns (process, service root URL)."""
    output = session.temp_dir("bench-kma-") / "stand-in.log"
    process = launch(
        [sys.executable, "-m", "tests.kma_server", "--key", KEY, "--delay", str(delay)],
        env=child_env(),
        output=output,
    )
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        text = output.read_text() if output.exists() else ""
        if text.startswith("http://"):
            return process, text.split()[0]
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the stand-in KMA did not start:\n{output.read_text(errors='replace')[-2000:]}")


def seed_cells(url: str, cells: int) -> None:
    """``cells`` markets, each in a grid cell of its own."""
    query(
        url,
        "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at) "
        "SELECT 'market ' || g, 'region', 37.5, 127.0, 1 + g % 149, 1 + g / 149, now(), now() "
        "FROM generate_series(0, :cells - 1) AS g",
        {"cells": cells},
    )


def whole_fetch(url: str, base_url: str, product: str, now: datetime) -> tuple[float, int, float]:
    """(seconds the command reports, rows stored, wall seconds) of one ``flask forecasts fetch``."""
    finished = flask(
        url,
        "forecasts",
        "fetch",
        "--product",
        product,
        "--now",
        now.isoformat(),
        timeout=900,
        KMA_BASE_URL=base_url,
        KMA_SERVICE_KEY=KEY,
        KMA_CONCURRENCY=str(CONCURRENCY),
    )
    match = SUMMARY.search(finished.output)
    if finished.returncode != 0 or not match or match.group(2) != "0":
        raise RuntimeError(f"flask forecasts fetch failed ({finished.returncode}):\n{finished.output[-3000:]}")
    return float(match.group(5)), int(match.group(3)), finished.seconds


def pure_download(base_url: str, product: str, now: datetime, cells: list[tuple[int, int]]) -> tuple[float, int]:
    """(seconds, values) of the same pages through the pipeline's download, nothing stored."""
    from weather import sources
    from weather.config import load_config
    from weather.forecast_fetch import cell_readings, download
    from weather.forecast_rows import ForecastWindow

    env = {"KMA_BASE_URL": base_url, "KMA_SERVICE_KEY": KEY, "KMA_CONCURRENCY": str(CONCURRENCY)}
    source = sources.source_for(product, load_config(env, "instance"))
    readings = cell_readings(source, source.base_time(now), cells, ForecastWindow(), datetime.now(KST))
    values = 0
    failures: list[str] = []
    began = time.perf_counter()
    for cell, outcome in download(source, readings, {cell: str(cell) for cell in cells}):
        if isinstance(outcome, Exception):
            failures.append(f"{cell}: {outcome}")
        else:
            values += sum(len(hour) for hour in outcome.hours.values())
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"download failed: {failures[:5]}")
    return elapsed, values


def measure(
    url: str, base_url: str, product: str, grid: list[tuple[int, int]], runs: int
) -> tuple[Series, Series, Series, float]:
    """(whole fetch, pure download, whole fetch's wall time, rows per fetch) of ``runs`` alternating runs."""
    whole, download = Series("whole fetch (flask forecasts fetch)"), Series("pure download (same pipeline, no store)")
    walls = Series("whole fetch, process wall time")
    rows_stored: list[float] = []
    (hour, minute), step = SCHEDULE[product]
    first = datetime.now(KST).replace(hour=hour, minute=minute, second=0, microsecond=0)
    started = time.perf_counter()
    for index in range(runs):
        now = first + step * index  # a new base time every run
        order = ("whole", "download") if index % 2 == 0 else ("download", "whole")
        for what in order:
            if what == "whole":
                seconds, rows, wall = whole_fetch(url, base_url, product, now)
                whole.values.append(seconds)
                walls.values.append(wall)
                rows_stored.append(rows)
            else:
                download.values.append(pure_download(base_url, product, now, grid)[0])
        print(f"  ... {product} run {index + 1}/{runs} done ({time.perf_counter() - started:.0f}s)", flush=True)
    return whole, download, walls, Series("", rows_stored).median


def main() -> int:
    session.begin("bench/fetch.py", __doc__)
    cells = int(os.environ.get("BENCH_CELLS") or sizes.size(1000, 200, 20))
    runs = int(os.environ.get("BENCH_RUNS") or sizes.size(3, 2, 1))
    delay = float(os.environ.get("BENCH_FETCH_DELAY") or 0.05)

    url = session.create_database()
    flask(url, "db", "upgrade").check()
    seed_cells(url, cells)
    grid = [(nx, ny) for nx, ny in query(url, "SELECT grid_nx, grid_ny FROM market ORDER BY id")]
    stand_in, base_url = start_stand_in(delay)
    print(
        f"\n{cells:,} cells (one market each), stand-in KMA answering after {delay:g} s per request, "
        f"KMA_CONCURRENCY={CONCURRENCY}",
        flush=True,
    )

    try:
        results = {product: measure(url, base_url, product, grid, runs) for product in PRODUCTS}
        stored = query(url, "SELECT count(*) FROM forecast")[0][0]
    finally:
        stop(stand_in)
        session.drop_database(url)

    rows = []
    for product, (whole, download, walls, rows_per_fetch) in results.items():
        rows += [
            [
                f"{product}: {s.name}",
                len(s.values),
                s.median,
                s.min,
                s.max,
                cells / s.median,
                rows_per_fetch / s.median if s is whole else "-",
                s.median / download.median,
            ]
            for s in (whole, download, walls)
        ]
    report.print_table(
        f"Fetch of {cells:,} cells per product, {runs} alternating runs ({stored:,} forecast rows stored in the end)",
        ["what", "runs", "median s", "min s", "max s", "cells/s", "rows/s", "ratio vs pure download"],
        rows,
    )
    print(
        "\nThe whole fetch's seconds are those its summary line reports (from reading the markets to the last "
        "commit); the wall row adds the interpreter and app start-up."
    )
    print()
    for product, (whole, download, _, _) in results.items():
        report.goal(
            f"{product}: whole fetch / pure download of the same pages (median)", whole.median / download.median, 1.2
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
