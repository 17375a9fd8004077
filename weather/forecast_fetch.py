"""The fetch pipeline: one forecast source's base time for every market, downloaded per grid cell, stored as it comes.

What it does around a source (weather.forecast_source), one job per function:
``market_cells`` finds the cells; ``download`` runs the requests in a thread
of their own (asyncio, at most ``policy.concurrency`` cells at a time, each
request timed, bounded and retried by ``BoundedGet``) and hands back each
cell's outcome as it arrives; ``cell_rows`` turns a cell's forecast into
checked rows for every market in it (weather.schemas.FORECAST_ROWS, as the
API checks them); ``BatchStore`` writes them through the API's write path
(weather.forecast_store) in batches, one transaction each; ``FetchReport``
counts it all. Any exception in one cell's download, parsing or rows fails
that cell alone, named by its markets; a failed batch is retried cell by cell.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from models import Market
from weather.alarm_rules import Thresholds
from weather.errors import ApiError
from weather.forecast_rows import CheckedRows, ForecastWindow
from weather.forecast_source import Cell, CellForecast, FetchPolicy, ForecastSource, Parsed, Reading, SourceError
from weather.forecast_store import store_forecasts
from weather.log_safety import quiet_http_client_logs
from weather.schemas import FORECAST_ROWS

# Rows per write at most: big enough for COPY to pay off. A batch is also written whenever no
# download is waiting (see ``download``), so storing keeps pace with the downloads.
BATCH_ROWS = 10_000
MAX_BACKOFF_SECONDS = 30.0
# A failure line names this many of a cell's markets, then counts the rest.
NAMED_MARKETS = 3

log = logging.getLogger(__name__)


@dataclass
class FetchReport:
    """How a fetch went: cells stored or failed (with why), rows written, alarms raised, items dropped."""

    product: str
    base: datetime
    cells: int = 0
    ok: int = 0
    failed: dict[Cell, str] = field(default_factory=dict)
    rows: int = 0
    alarms: int = 0
    unknown: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)  # the first problem of a cell's rejected hours
    dropped: Counter[str] = field(default_factory=Counter)  # items dropped while reading, by reason
    labels: dict[Cell, str] = field(default_factory=dict)  # each cell named by its markets
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.ok + len(self.failed)


@dataclass(frozen=True)
class CellMarkets:
    """The markets of one grid cell: their ids (one row each) and a label naming them for the operator."""

    ids: list[int]
    label: str


def market_cells(session: Session) -> dict[Cell, CellMarkets]:
    """Every grid cell that holds a market, with its markets: one request series per cell."""
    found: dict[Cell, list[tuple[int, str]]] = defaultdict(list)
    for market_id, name, nx, ny in session.execute(
        select(Market.id, Market.name, Market.grid_nx, Market.grid_ny).order_by(
            Market.grid_nx, Market.grid_ny, Market.id
        )
    ):
        found[(nx, ny)].append((market_id, name))
    return {cell: CellMarkets([i for i, _ in markets], _label(cell, markets)) for cell, markets in found.items()}


def _label(cell: Cell, markets: list[tuple[int, str]]) -> str:
    names = ", ".join(name for _, name in markets[:NAMED_MARKETS])
    more = f" and {len(markets) - NAMED_MARKETS} more" if len(markets) > NAMED_MARKETS else ""
    return f"cell nx={cell[0]} ny={cell[1]} ({names}{more})"


# --------------------------------------------------------------------------- downloading


class BoundedGet:
    """The GET every source uses: one timeout per request, a bounded body, bounded retries with a line each."""

    def __init__(self, http: httpx.AsyncClient, policy: FetchPolicy, redact: Callable[[str], str], label: str) -> None:
        self.http, self.policy, self.redact, self.label = http, policy, redact, label

    async def __call__(self, url: str, params: Mapping[str, str], parse: Callable[[int, bytes], Parsed]) -> Parsed:
        attempts = self.policy.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return parse(*await self._get(url, params))
            except SourceError as exc:
                reason = self.redact(str(exc))
                if not exc.transient or attempt == attempts:
                    raise SourceError(reason) from None
            wait = min(self.policy.retry_backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            log.warning("%s: %s; try %d of %d in %.3g s", self.label, reason, attempt + 1, attempts, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get(self, url: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        """(HTTP status, body) of one request; transport trouble is transient, an undecodable body is not."""
        limit = self.policy.max_response_bytes
        try:
            async with asyncio.timeout(self.policy.timeout_seconds):
                async with self.http.stream("GET", url, params=params) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise SourceError(f"answer larger than {limit:,} bytes")
                    return response.status_code, bytes(body)
        except TimeoutError:
            raise SourceError(f"no answer within {self.policy.timeout_seconds:g} s", transient=True) from None
        except httpx.TimeoutException as exc:
            raise SourceError(f"timed out ({type(exc).__name__})", transient=True) from None
        except httpx.TransportError as exc:
            raise SourceError(f"connection failed ({type(exc).__name__})", transient=True) from None
        except httpx.HTTPError as exc:  # e.g. DecodingError: a body that is not what Content-Encoding says
            raise SourceError(f"unreadable answer ({type(exc).__name__})") from None


Outcome = CellForecast | SourceError


async def _download_all(
    source: ForecastSource,
    readings: Mapping[Cell, Reading],
    labels: Mapping[Cell, str],
    on_outcome: Callable[[Cell, Outcome], None],
) -> None:
    quiet_http_client_logs()  # httpx logs every request's URL at INFO, and a source's URL may carry its key
    policy = source.policy
    limits = httpx.Limits(max_connections=policy.concurrency, max_keepalive_connections=policy.concurrency)
    gate = asyncio.Semaphore(policy.concurrency)
    async with httpx.AsyncClient(timeout=policy.timeout_seconds, limits=limits) as http:

        async def one(cell: Cell) -> None:
            async with gate:
                get = BoundedGet(http, policy, source.redact, labels[cell])
                try:
                    outcome: Outcome = await source.fetch_cell(get, readings[cell])
                except SourceError as exc:
                    outcome = exc
                except Exception as exc:  # a source's bug or an answer nobody foresaw: this cell only
                    log.debug("%s: unexpected error", labels[cell], exc_info=True)
                    outcome = SourceError(f"unexpected {type(exc).__name__}: {source.redact(str(exc))[:120]}")
            on_outcome(cell, outcome)

        await asyncio.gather(*(one(cell) for cell in readings))


def download(
    source: ForecastSource,
    readings: Mapping[Cell, Reading],
    labels: Mapping[Cell, str],
    on_idle: Callable[[], None] | None = None,
) -> Iterator[tuple[Cell, Outcome]]:
    """Each cell's outcome as it arrives, from a download thread; every cell gets one, even if the loop breaks.

    ``on_idle`` runs whenever no outcome is waiting, before waiting for the next:
    the pipeline stores then, so storing overlaps downloading and little is left at the end.
    """
    outcomes: queue.Queue[tuple[Cell, Outcome] | BaseException | None] = queue.Queue()

    def run() -> None:
        try:
            asyncio.run(_download_all(source, readings, labels, lambda cell, outcome: outcomes.put((cell, outcome))))
        except BaseException as exc:
            outcomes.put(exc)
        finally:
            outcomes.put(None)

    downloader = threading.Thread(target=run, name=f"{source.product}-download", daemon=True)
    downloader.start()
    seen: set[Cell] = set()
    stopped: BaseException | None = None
    while True:
        if on_idle is not None and outcomes.empty():
            on_idle()
        if (item := outcomes.get()) is None:
            break
        if isinstance(item, BaseException):
            stopped = item
            continue
        seen.add(item[0])
        yield item
    downloader.join()
    reason = f"download stopped ({type(stopped).__name__})" if stopped else "download stopped"
    for cell in readings.keys() - seen:
        yield cell, SourceError(reason)


# --------------------------------------------------------------------------- rows and storing


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


class BatchStore:
    """Cells' rows written in batches of about BATCH_ROWS, one transaction each; the report kept up to date."""

    def __init__(self, session: Session, columns: tuple[str, ...], thresholds: Thresholds, report: FetchReport) -> None:
        self.session, self.columns, self.thresholds, self.report = session, columns, thresholds, report
        self.cells: dict[Cell, list[dict[str, Any]]] = {}
        self.rows = 0

    def add(self, cell: Cell, rows: list[dict[str, Any]]) -> bool:
        """Queue a cell's rows; True when that filled a batch and it was written."""
        self.cells[cell] = rows
        self.rows += len(rows)
        if self.rows < BATCH_ROWS:
            return False
        self.flush()
        return True

    def flush(self) -> None:
        """Write what is queued; if the batch fails, each of its cells is tried alone, so one bad cell fails alone."""
        batch, self.cells, self.rows = self.cells, {}, 0
        if not batch:
            return
        if not self._write(batch) and len(batch) > 1:
            for cell, rows in batch.items():
                self._write({cell: rows})

    def _write(self, batch: dict[Cell, list[dict[str, Any]]]) -> bool:
        rows = [row for rows_of_cell in batch.values() for row in rows_of_cell]
        try:
            stored = store_forecasts(self.session, rows, self.thresholds, columns=self.columns)
            self.session.commit()
        except (SQLAlchemyError, ApiError) as exc:
            self.session.rollback()
            if len(batch) == 1:
                self.report.failed.update({cell: f"storing failed ({type(exc).__name__})" for cell in batch})
            return False
        self.report.ok += len(batch)
        self.report.rows += stored.upserted
        self.report.alarms += len(stored.alarms)
        return True


# --------------------------------------------------------------------------- the pipeline


def cell_readings(
    source: ForecastSource, base: datetime, cells: Iterable[Cell], window: ForecastWindow, now: datetime
) -> dict[Cell, Reading]:
    """What each cell's reading is bounded by: the forecast window around ``now`` and the source's caps."""
    earliest, latest = window.bounds(now)
    return {
        cell: Reading(cell, base, earliest, latest, source.max_items, source.max_hours, source.max_pages)
        for cell in cells
    }


def run_fetch(
    session: Session,
    source: ForecastSource,
    base: datetime,
    thresholds: Thresholds,
    window: ForecastWindow,
    progress: Callable[[FetchReport], None] | None = None,
) -> FetchReport:
    """Fetch and store ``source``'s base time ``base`` for every market's cell; never raises for a cell's failure."""
    started = time.perf_counter()
    cells = market_cells(session)
    session.rollback()  # no transaction held open while the downloads run
    labels = {cell: markets.label for cell, markets in cells.items()}
    report = FetchReport(product=source.product, base=base, cells=len(cells), labels=labels)
    now = datetime.now(UTC)
    readings = cell_readings(source, base, cells, window, now)
    store = BatchStore(session, source.columns, thresholds, report)
    for cell, outcome in download(source, readings, labels, on_idle=store.flush):
        if isinstance(outcome, SourceError):
            report.failed[cell] = str(outcome)
        else:
            _take(cell, outcome, cells[cell].ids, window, now, store)
        if progress:
            progress(report)
    store.flush()
    if progress:
        progress(report)
    report.seconds = time.perf_counter() - started
    return report


def _take(
    cell: Cell, forecast: CellForecast, market_ids: list[int], window: ForecastWindow, now: datetime, store: BatchStore
) -> None:
    """Count what a cell's forecast brought and queue its rows, or fail the cell alone."""
    report = store.report
    report.unknown.update(forecast.unknown)
    report.dropped.update(forecast.dropped)
    try:
        rows, checked = cell_rows(forecast, market_ids, window, now)
    except Exception as exc:  # rows that break the check itself: this cell only
        log.debug("cell %s: rows not built", cell, exc_info=True)
        report.failed[cell] = f"rows not built ({type(exc).__name__})"
        return
    if checked.rejected:
        report.rejections[first_problem(checked)] += checked.rejected
    if rows:
        store.add(cell, rows)
    elif forecast.hours:
        report.failed[cell] = f"every hour rejected ({first_problem(checked)})"
    elif forecast.dropped:
        report.failed[cell] = f"no hour kept ({', '.join(f'{n} {why}' for why, n in forecast.dropped.items())})"
    else:
        report.ok += 1  # an empty answer: nothing to store
