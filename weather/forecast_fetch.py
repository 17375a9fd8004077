"""One fetch of KMA's forecast for every market: download per grid cell, store while downloading.

The downloads run in a thread of their own (asyncio, at most KMA_CONCURRENCY
cells at a time); this thread turns each finished cell into forecast rows for
every market in it, checks them like the API does (weather.schemas.FORECAST_ROWS),
and stores them through the API's write path (weather.forecast_store) in
batches, one transaction each. A failed cell is reported and skipped; it never
stops the others.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from models import Market
from weather.alarm_rules import Thresholds
from weather.errors import ApiError
from weather.forecast_rows import CheckedRows, ForecastWindow
from weather.forecast_store import store_forecasts
from weather.kma import CellForecast, KmaError, KmaSettings, fetch_cells
from weather.schemas import FORECAST_ROWS

Cell = tuple[int, int]
# Rows per write: big enough for COPY to pay off, small enough to store while the downloads go on.
BATCH_ROWS = 10_000


@dataclass
class FetchReport:
    """How a fetch went: cells stored or failed (with why), rows written, alarms raised."""

    base: datetime
    cells: int = 0
    ok: int = 0
    failed: dict[Cell, str] = field(default_factory=dict)
    rows: int = 0
    alarms: int = 0
    unknown: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)  # the first problem of a cell's rejected hours
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.ok + len(self.failed)


def market_cells(session: Session) -> dict[Cell, list[int]]:
    """Every grid cell that holds a market, with its markets' ids: one request series per cell."""
    cells: dict[Cell, list[int]] = defaultdict(list)
    for market_id, nx, ny in session.execute(
        select(Market.id, Market.grid_nx, Market.grid_ny).order_by(Market.grid_nx, Market.grid_ny, Market.id)
    ):
        cells[(nx, ny)].append(market_id)
    return dict(cells)


def cell_rows(
    forecast: CellForecast, market_ids: list[int], window: ForecastWindow, now: datetime
) -> tuple[list[dict[str, Any]], CheckedRows]:
    """The checked rows of ``forecast`` for every market of its cell, and the check's verdict per hour."""
    hours = [
        {"market_id": market_ids[0], "forecast_time": when.isoformat(), **values}
        for when, values in sorted(forecast.hours.items())
    ]
    checked = FORECAST_ROWS.check(hours, window, now=now)  # one check per hour, not per market
    rows = [{**row, "market_id": market_id} for market_id in market_ids for row in checked.rows]
    return rows, checked


def first_problem(checked: CheckedRows) -> str:
    """The first rejected hour's first problem, as ``field: message``."""
    for problems in checked.errors.values():
        for name, messages in problems.items() if isinstance(problems, dict) else [("row", problems)]:
            return f"{name}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}"
    return "rejected"


def run_fetch(
    session: Session,
    settings: KmaSettings,
    base: datetime,
    thresholds: Thresholds,
    window: ForecastWindow,
    progress: Callable[[FetchReport], None] | None = None,
) -> FetchReport:
    """Fetch and store base time ``base`` for every market's cell; never raises for a cell's failure."""
    started = time.perf_counter()
    cells = market_cells(session)
    session.rollback()  # no transaction held open while the downloads run
    report = FetchReport(base=base, cells=len(cells))
    outcomes: queue.Queue[tuple[Cell, CellForecast | KmaError | BaseException]] = queue.Queue()
    no_cell: Cell = (-1, -1)

    def download() -> None:
        try:
            asyncio.run(fetch_cells(settings, base, cells, lambda cell, outcome: outcomes.put((cell, outcome))))
        except BaseException as exc:  # the loop itself broke: every cell still owed gets this error
            outcomes.put((no_cell, exc))

    downloader = threading.Thread(target=download, name="kma-download", daemon=True)
    downloader.start()
    pending_cells: list[Cell] = []
    pending_rows: list[dict[str, Any]] = []

    def flush() -> None:
        if not pending_cells:
            return
        try:
            stored = store_forecasts(session, pending_rows, thresholds)
            session.commit()
        except (SQLAlchemyError, ApiError) as exc:
            session.rollback()
            reason = f"storing failed ({type(exc).__name__})"
            report.failed.update({cell: reason for cell in pending_cells})
        else:
            report.ok += len(pending_cells)
            report.rows += stored.upserted
            report.alarms += len(stored.alarms)
        pending_cells.clear()
        pending_rows.clear()
        if progress:
            progress(report)

    now = datetime.now(UTC)
    seen: set[Cell] = set()
    while len(seen) < len(cells):
        cell, outcome = outcomes.get()
        if not isinstance(outcome, CellForecast | KmaError):  # the download loop broke
            for missing in cells.keys() - seen:
                report.failed[missing] = f"download stopped ({type(outcome).__name__})"
            break
        seen.add(cell)
        if isinstance(outcome, KmaError):
            report.failed[cell] = str(outcome)
        else:
            report.unknown.update(outcome.unknown)
            rows, checked = cell_rows(outcome, cells[cell], window, now)
            if checked.rejected:
                report.rejections[first_problem(checked)] += checked.rejected
            if not rows and outcome.hours:
                report.failed[cell] = f"every hour rejected ({first_problem(checked)})"
                continue
            pending_cells.append(cell)
            pending_rows.extend(rows)
            if len(pending_rows) >= BATCH_ROWS:
                flush()
                continue
        if progress:
            progress(report)
    flush()
    downloader.join(timeout=5)
    report.seconds = time.perf_counter() - started
    return report
