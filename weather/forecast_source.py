"""What a forecast source is, and what the fetch pipeline (weather.forecast_fetch) does around it.

A source knows one upstream product: its settings, its base-time rule, how to
ask for one grid cell's forecast (the URLs, parameters and pages) and how an
answer becomes hours of forecast columns. The pipeline does the rest, the same
for every source: the cells to fetch (one per distinct KMA grid cell of the
markets), concurrency, timeouts, bounded reads, retries with backoff (and a
line for each), per-cell isolation, checking and batching rows into the one
write path, the summary and the progress line.

The pipeline imports this module only; the sources live in weather/sources/,
one module each, and are found by their ``PRODUCT`` name (tests/test_architecture.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

Cell = tuple[int, int]
Measures = dict[str, float | int | None]
Parsed = TypeVar("Parsed")


class SourceError(Exception):
    """One cell's request series failed; the message names the cause, never a credential."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class FetchPolicy:
    """How the pipeline talks to a source's upstream: the same knobs for every source."""

    concurrency: int
    timeout_seconds: float  # one request, start to end of its body
    retries: int  # more tries of a request after a transient failure
    retry_backoff_seconds: float  # the first wait; doubled each time, at most MAX_BACKOFF_SECONDS
    max_response_bytes: int  # a body beyond this (after decoding) fails the cell


@dataclass(frozen=True)
class Reading:
    """What a source reads for one cell: which cell and base time, and the bounds its answer must keep."""

    cell: Cell
    base: datetime
    earliest: datetime  # forecast hours outside [earliest, latest] are dropped while reading
    latest: datetime
    max_items: int  # more items for one cell fail it (a lying upstream)
    max_hours: int  # likewise for distinct forecast hours
    max_pages: int  # never ask for more pages than this


@dataclass
class CellForecast:
    """One cell's forecast: the columns per forecast hour (aware keys), and what was not stored, and why."""

    hours: dict[datetime, Measures] = field(default_factory=dict)
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (category, value) not understood
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> items dropped while reading
    requests: int = 0


class GetPage(Protocol):
    """The pipeline's GET: bounded, timed, retried; ``parse(status, body)`` raises SourceError (transient or not)."""

    def __call__(
        self, url: str, params: Mapping[str, str], parse: Callable[[int, bytes], Parsed]
    ) -> Awaitable[Parsed]: ...


@runtime_checkable
class ForecastSource(Protocol):
    """One upstream forecast product, as the pipeline sees it."""

    product: str  # the name of ``flask forecasts fetch --product``
    columns: tuple[str, ...]  # the forecast columns it carries; a stored hour keeps the others
    policy: FetchPolicy
    max_items: int
    max_hours: int
    max_pages: int

    def base_time(self, now: datetime) -> datetime:
        """The latest base time whose forecast is available at ``now`` (aware)."""
        ...

    def redact(self, text: str) -> str:
        """``text`` with every credential of the source replaced by ***."""
        ...

    async def fetch_cell(self, get: GetPage, reading: Reading) -> CellForecast:
        """Every page of one cell's forecast; raises SourceError."""
        ...
