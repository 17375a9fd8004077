"""`flask forecasts fetch` against a stand-in KMA: cells/s, rows/s, and the whole fetch vs the pure download.

Set-up: a fresh PostgreSQL database migrated by ``flask db upgrade``, 1,000
markets in 1,000 distinct grid cells (BENCH_QUICK: 200), and the local stand-in
of KMA's getVilageFcst (``python -m tests.kma_server``, in a process of its own)
answering each request after a fixed delay (BENCH_FETCH_DELAY, default 0.05 s)
with the documented JSON: 67 forecast hours per cell, 810 values, one page.

Measured, alternating run by run (each run a new base time, so the database
holds more forecasts every run, as in production):

1. the whole fetch: ``flask forecasts fetch --now ...`` as a subprocess, with
   KMA_CONCURRENCY=4; the seconds its summary line reports (downloads, parsing,
   checking and storing every cell, alarms included; not the interpreter start);
2. the pure download of the same pages at the same concurrency: the command's
   own client (``weather.kma.fetch_cells``) in this process, parsing each answer
   and storing nothing.

Goal: whole fetch / pure download <= 2 (storing overlaps fetching).

Run::

    .venv/bin/python bench/fetch.py
    BENCH_QUICK=1 .venv/bin/python bench/fetch.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_CELLS``,
``BENCH_RUNS`` and ``BENCH_FETCH_DELAY`` (seconds per request) override the sizes.
"""

from __future__ import annotations

import asyncio
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
SUMMARY = re.compile(r"(\d+) cells ok, (\d+) failed; (\d+) rows stored; (\d+) alarms raised; ([\d.]+) s")


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


def whole_fetch(url: str, base_url: str, now: datetime) -> tuple[float, int, float]:
    """(seconds the command reports, rows stored, wall seconds) of one ``flask forecasts fetch``."""
    finished = flask(
        url,
        "forecasts",
        "fetch",
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


def pure_download(base_url: str, now: datetime, cells: list[tuple[int, int]]) -> tuple[float, int]:
    """(seconds, values) of the same pages through the command's client, nothing stored."""
    from weather.kma import CellForecast, KmaSettings, fetch_cells, latest_base_time

    settings = KmaSettings(base_url=base_url, service_key=KEY, concurrency=CONCURRENCY)
    values = [0]
    failures: list[str] = []

    def count(cell: tuple[int, int], outcome: object) -> None:
        if isinstance(outcome, CellForecast):
            values[0] += sum(len(hour) for hour in outcome.hours.values())
        else:
            failures.append(f"{cell}: {outcome}")

    began = time.perf_counter()
    asyncio.run(fetch_cells(settings, latest_base_time(now), cells, count))
    elapsed = time.perf_counter() - began
    if failures:
        raise RuntimeError(f"download failed: {failures[:5]}")
    return elapsed, values[0]


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

    whole, download = Series("whole fetch (flask forecasts fetch)"), Series("pure download (same client, no store)")
    walls = Series("whole fetch, process wall time")
    rows_stored: list[int] = []
    started = time.perf_counter()
    first = datetime.now(KST).replace(hour=5, minute=11, second=0, microsecond=0)
    try:
        for index in range(runs):
            now = first + timedelta(hours=3 * index)  # a new base time every run
            order = ("whole", "download") if index % 2 == 0 else ("download", "whole")
            for what in order:
                if what == "whole":
                    seconds, rows, wall = whole_fetch(url, base_url, now)
                    whole.values.append(seconds)
                    walls.values.append(wall)
                    rows_stored.append(rows)
                else:
                    seconds, _ = pure_download(base_url, now, grid)
                    download.values.append(seconds)
            print(f"  ... run {index + 1}/{runs} done ({time.perf_counter() - started:.0f}s)", flush=True)
        stored = query(url, "SELECT count(*) FROM forecast")[0][0]
    finally:
        stop(stand_in)
        session.drop_database(url)

    rows_per_fetch = Series("", [float(r) for r in rows_stored]).median
    report.print_table(
        f"Fetch of {cells:,} cells, {runs} alternating runs ({stored:,} forecast rows stored in the end)",
        ["what", "runs", "median s", "min s", "max s", "cells/s", "rows/s", "ratio vs pure download"],
        [
            [
                s.name,
                len(s.values),
                s.median,
                s.min,
                s.max,
                cells / s.median,
                rows_per_fetch / s.median if s is whole else "-",
                s.median / download.median,
            ]
            for s in (whole, download)
        ]
        + [
            [
                walls.name,
                len(walls.values),
                walls.median,
                walls.min,
                walls.max,
                "-",
                "-",
                walls.median / download.median,
            ]
        ],
    )
    print(
        "\nThe whole fetch's seconds are those its summary line reports (from reading the markets to the last "
        "commit); the wall row adds the interpreter and app start-up."
    )
    print()
    report.goal("whole fetch / pure download of the same pages (median)", whole.median / download.median, 2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
