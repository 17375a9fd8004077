"""A concurrent load on the alarm log, and how long its requests stalled while something else ran.

Threads on their own psycopg2 connections (autocommit) each run one kind of
request in a loop with a short pause, recording every request's start and
latency; ``measure_under_load`` runs an action meanwhile and reports the
stall of the requests in flight during it.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bench.report import percentile
from tests.helpers import libpq, query

T = TypeVar("T")


@dataclass
class Request:
    kind: str
    start: float
    latency: float
    error: str | None = None


# One kind of request: (psycopg2 cursor, random source, a number unique in this process) -> None.
Operation = Callable[[Any, random.Random, int], None]
# A number no request of any load in this process has had (unique keys for inserts).
_unique = itertools.count(1)


class Load:
    """Threads running their operations until the ``with`` block ends; ``requests`` holds every one."""

    def __init__(self, url: str, workers: dict[str, Operation], pause: float = 0.002) -> None:
        self.url, self.workers, self.pause = libpq(url), workers, pause
        self.requests: list[Request] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Load:
        ready = threading.Barrier(len(self.workers) + 1)
        for index, (kind, operation) in enumerate(self.workers.items()):
            thread = threading.Thread(target=self._work, args=(kind, operation, index, ready), daemon=True)
            thread.start()
            self._threads.append(thread)
        ready.wait(30)
        time.sleep(0.2)  # warm up: plans cached, connections busy
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def _work(self, kind: str, operation: Operation, index: int, ready: threading.Barrier) -> None:
        import psycopg2

        connection = psycopg2.connect(self.url, application_name=f"bench load {kind}")
        connection.autocommit = True
        rng, mine = random.Random(index), []
        try:
            with connection.cursor() as cursor:
                ready.wait(30)
                while not self._stop.is_set():
                    start = time.perf_counter()
                    error = None
                    try:
                        operation(cursor, rng, next(_unique))
                    except psycopg2.Error as exc:
                        error = type(exc).__name__
                    mine.append(Request(kind, start, time.perf_counter() - start, error))
                    time.sleep(self.pause)
        finally:
            connection.close()
            with self._lock:
                self.requests.extend(mine)

    def window(self, start: float, end: float) -> list[Request]:
        """Requests that were in flight at some moment of [start, end]."""
        return [r for r in self.requests if r.start <= end and r.start + r.latency >= start]


@dataclass
class Stall:
    """How a concurrent load fared during one window."""

    longest: float
    p99: float
    requests: int
    errors: int

    @classmethod
    def of(cls, requests: Sequence[Request]) -> Stall:
        latencies = [r.latency for r in requests]
        return cls(
            longest=max(latencies, default=float("nan")),
            p99=percentile(latencies, 0.99),
            requests=len(requests),
            errors=sum(1 for r in requests if r.error),
        )


@dataclass
class Measured(Generic[T]):
    """What ``measure_under_load`` saw: the stall, the action's result, its seconds and the requests in flight."""

    stall: Stall
    result: T
    seconds: float
    started: float
    requests: list[Request]


def measure_under_load(
    url: str, workers: dict[str, Operation], action: Callable[[], T], pause: float = 0.005
) -> Measured[T]:
    """Run ``action`` while the load runs: the stall of the requests in flight during it,
    what it returned and how many seconds it took."""
    with Load(url, workers, pause) as load:
        start = time.perf_counter()
        result = action()
        end = time.perf_counter()
        time.sleep(0.05)
    during = load.window(start, end)
    return Measured(Stall.of(during), result, end - start, start, during)


# --------------------------------------------------------------------------- the alarm log and its load

MARKETS = 1000


def seed_alarm_log(url: str, rows: int) -> float:
    """``rows`` rows in market_alarm_log (and the markets they need), set-based; returns seconds.

    Each row is one (market, alarm type, target date): row g is market 1 + g % 1000, type
    (g / 1000) % 5 and date 2000-01-01 + g / 5000, so the unique key never collides.
    """
    started = time.perf_counter()
    query(
        url,
        "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at) "
        "SELECT 'market ' || g, 'region ' || (g % 17), 37.5665, 126.9780, 60, 127, now(), now() "
        "FROM generate_series(1, :markets) AS g",
        {"markets": MARKETS},
    )
    query(
        url,
        "INSERT INTO market_alarm_log (market_id, alarm_type, target_date, title, message, created_at) "
        "SELECT 1 + g % 1000, (ARRAY['RAIN', 'HEAT', 'COLD', 'WIND', 'SNOW'])[1 + (g / 1000) % 5], "
        "date '2000-01-01' + g / 5000, 'Heavy rain warning ' || g, "
        "'Rain of 30 mm or more is expected tomorrow; cover the stalls. #' || g, "
        "now() - g * interval '1 second' FROM generate_series(0, :rows - 1) AS g",
        {"rows": rows},
    )
    query(url, "VACUUM ANALYZE market_alarm_log")
    query(url, "VACUUM ANALYZE market")
    return time.perf_counter() - started


WRITERS = ("insert", "update")  # the writing requests of alarm_log_load


def alarm_log_load(rows: int) -> dict[str, Operation]:
    """The service's traffic on the alarm log: two kinds of reads, inserts, single-row updates.

    Inserts name only the columns of the initial schema, so they work before and after any
    step (new columns must have a default: that is the expand/contract rule).
    """

    def read_one(cursor: Any, rng: random.Random, _: int) -> None:
        cursor.execute("SELECT id, title, target_date FROM market_alarm_log WHERE id = %s", (rng.randint(1, rows),))
        cursor.fetchall()

    def read_market(cursor: Any, rng: random.Random, _: int) -> None:
        cursor.execute(
            "SELECT id, alarm_type, target_date FROM market_alarm_log WHERE market_id = %s "
            "AND alarm_type = 'RAIN' ORDER BY target_date DESC LIMIT 20",
            (rng.randint(1, MARKETS),),
        )
        cursor.fetchall()

    def insert(cursor: Any, rng: random.Random, unique: int) -> None:
        cursor.execute(
            "INSERT INTO market_alarm_log (market_id, alarm_type, target_date, title, message, created_at) "
            "VALUES (%s, 'WIND', date '3000-01-01' + %s, 'Strong wind', 'Tie down the awnings.', now())",
            (rng.randint(1, MARKETS), unique),
        )

    def update(cursor: Any, rng: random.Random, _: int) -> None:
        cursor.execute("UPDATE market_alarm_log SET title = title WHERE id = %s", (rng.randint(1, rows),))

    return {"read by id": read_one, "read by market": read_market, "insert": insert, "update": update}
