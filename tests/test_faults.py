"""Faults while starting and serving, through the real entrypoint.sh, gunicorn and PostgreSQL.

Each test prints what it injected and what survived (visible with ``pytest -s``).
The database "goes down" through tests/faults.py's proxy; the shared server never stops.
"""

from __future__ import annotations

import datetime
import os
import signal
import threading
import time
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, pool, text

from tests.api_helpers import DAY, post_market
from tests.conftest import API_TOKEN, AUTH
from tests.faults import FaultProxy, child_pids
from tests.helpers import REVISIONS, run, scalar, wait_for_http
from tests.test_entrypoint import start, stop


@pytest.fixture
def proxy():
    proxy = FaultProxy()
    yield proxy
    proxy.close()


def test_database_down_at_start_then_up_within_the_wait(pg_url, proxy):
    proxy.down()
    process, port = start(proxy.url(pg_url), DB_WAIT_TIMEOUT="30")
    try:
        # Down until the entrypoint has retried at least three times (its import may be slow on a busy machine).
        down_since = time.monotonic()
        while proxy.refused < 3 and process.poll() is None and time.monotonic() < down_since + 60:
            time.sleep(0.05)
        time.sleep(1)
        down_for = time.monotonic() - down_since
        refused_while_down = proxy.refused
        proxy.up()
        came_up = time.monotonic()
        wait_for_http(f"http://127.0.0.1:{port}/readyz", process, timeout=30)
        ready_after = time.monotonic() - came_up
    finally:
        code, output = stop(process)
    print(
        f"\ninjected: database down at start for {down_for:.1f} s ({refused_while_down} attempts reset); "
        f"survived: ready {ready_after:.1f} s after it came up, exit {code}"
    )
    assert code == 0, output
    assert refused_while_down >= 3  # it retried with backoff, not once
    assert ready_after < 30  # backoff is capped at 5 s; the rest is migrating on a possibly busy machine
    assert "waiting for database at postgresql+psycopg2://postgres:***@127.0.0.1" in output
    assert "is reachable after" in output and f"{len(REVISIONS)} pending" in output
    assert "s3cret-pw" not in output and "Traceback" not in output


def test_database_down_past_the_wait_is_one_masked_line(pg_url, proxy):
    proxy.down()
    started = time.monotonic()
    result = run(["./entrypoint.sh"], database_url=proxy.url(pg_url), DB_WAIT_TIMEOUT="2", timeout=60)
    took = time.monotonic() - started
    last = result.stderr.strip().splitlines()[-1]
    print(
        f"\ninjected: database down for the whole DB_WAIT_TIMEOUT=2 ({proxy.refused} attempts reset); "
        f"exit {result.returncode} after {took:.1f} s: {last}"
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "ERROR [safe_migrations] database migration: database at postgresql+psycopg2://postgres:***@127.0.0.1" in (
        last
    )
    assert "not reachable after" in last and "DB_WAIT_TIMEOUT=2" in last
    assert "s3cret-pw" not in result.stderr and "Traceback" not in result.stderr
    waited = float(last.split("not reachable after ", 1)[1].split("s", 1)[0])
    assert waited <= 2 + 0.5  # the wait itself is bounded by DB_WAIT_TIMEOUT (start-up time adds to `took`)
    assert took < 90


def test_database_restart_while_serving_gives_503_then_recovers(pg_url, proxy):
    process, port = start(proxy.url(pg_url), API_TOKEN=API_TOKEN)
    base = f"http://127.0.0.1:{port}"
    outage: list[tuple[str, int, float]] = []
    try:
        wait_for_http(f"{base}/readyz", process)
        market = post_market(base)
        for _ in range(4):  # the worker's pool holds a connection
            assert requests.get(f"{base}/api/v1/markets/{market}", timeout=10).status_code == 200
        proxy.down()
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", f"/api/v1/markets/{market}", None),
            ("GET", "/api/v1/markets", None),
            ("POST", "/api/v1/markets", {"name": "새시장", "region": "서울", "latitude": 37.5, "longitude": 127.0}),
            (
                "POST",
                "/api/v1/forecasts",
                {"forecasts": [{"market_id": market, "forecast_time": f"{DAY}T12:00:00+09:00", "temperature": 35}]},
            ),
            ("GET", "/readyz", None),
        ] * 2
        for method, path, body in calls:
            began = time.monotonic()
            response = requests.request(method, base + path, json=body, headers=AUTH, timeout=20)
            outage.append((f"{method} {path}", response.status_code, time.monotonic() - began))
            assert response.status_code == 503, (path, response.status_code, response.text)
            assert response.headers["Content-Type"].startswith("application/json")
            if path != "/readyz":
                assert response.json()["error"] == "database_unavailable" and response.headers["Retry-After"]
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200  # liveness never depends on the DB
        proxy.up()
        recovered = [requests.get(f"{base}/api/v1/markets/{market}", timeout=10).status_code for _ in range(6)]
    finally:
        code, output = stop(process)
    slowest = max(took for _, _, took in outage)
    print(
        f"\ninjected: {proxy.cut_connections} pooled connections cut, {proxy.refused} reconnects reset; "
        f"during the outage {len(outage)} requests all 503 JSON (slowest {slowest:.2f} s); "
        f"after: {recovered}; markets in the database: {scalar(pg_url, 'SELECT count(*) FROM market')}"
    )
    assert recovered == [200] * 6
    assert slowest < 5
    assert scalar(pg_url, "SELECT count(*) FROM market") == 1  # the writes during the outage wrote nothing
    assert code == 0 and "Traceback" not in output, output


def test_worker_killed_mid_ingest_writes_nothing_and_is_replaced(pg_url):
    # One worker; a generous worker timeout, so a loaded test machine never turns the retry into a timeout.
    process, port = start(pg_url, API_TOKEN=API_TOKEN, GUNICORN_TIMEOUT="180")
    base = f"http://127.0.0.1:{port}"
    database = pg_url.rsplit("/", 1)[1]
    outcome: dict[str, object] = {}
    try:
        wait_for_http(f"{base}/readyz", process)
        market = post_market(base)
        hours = 10_000
        # Inside the ingest's forecast window (a year back, a month ahead): two markets of 5,000 hours.
        second_market = post_market(base, "남대문시장")
        first = datetime.datetime.now(datetime.UTC).replace(minute=0, second=0, microsecond=0)
        first -= datetime.timedelta(hours=hours // 2 - 24)
        rows = [
            {
                "market_id": (market, second_market)[h % 2],
                "forecast_time": (first + datetime.timedelta(hours=h // 2)).isoformat(),
                "temperature": 20.0,
            }
            for h in range(hours)
        ]
        body: dict[str, Any] = {"forecasts": rows}
        (worker,) = child_pids(process.pid)

        def send() -> None:
            try:
                outcome["response"] = requests.post(f"{base}/api/v1/forecasts", json=body, headers=AUTH, timeout=60)
            except requests.RequestException as exc:
                outcome["error"] = type(exc).__name__

        sender = threading.Thread(target=send)
        sender.start()
        admin = create_engine(pg_url, poolclass=pool.NullPool)
        seen = None
        deadline = time.monotonic() + 30
        with admin.connect() as connection:
            while seen is None and time.monotonic() < deadline:
                seen = connection.execute(
                    text(
                        "SELECT left(query, 40) FROM pg_stat_activity WHERE datname = :db AND state = 'active' "
                        "AND (query ILIKE 'INSERT INTO forecast%' OR query ILIKE 'COPY forecast_ingest%')"
                    ),
                    {"db": database},
                ).scalar()
                connection.rollback()
                if seen is None:
                    time.sleep(0.005)
        assert seen, "the ingest's COPY or INSERT was never seen in flight"
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        sender.join(timeout=60)
        # The killed worker's backend rolls back once PostgreSQL notices the client is gone.
        with admin.connect() as connection:
            while (
                time.monotonic() < killed_at + 30
                and connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
                        "AND (query ILIKE 'INSERT INTO forecast%' OR query ILIKE 'COPY forecast_ingest%') "
                        "AND state <> 'idle'"
                    ),
                    {"db": database},
                ).scalar()
            ):
                connection.rollback()
                time.sleep(0.05)
                time.sleep(0.1)
        admin.dispose()
        after_kill = scalar(pg_url, "SELECT count(*) FROM forecast")
        wait_for_http(f"{base}/readyz", process)
        (replacement,) = child_pids(process.pid)
        began = time.monotonic()
        retried = requests.post(f"{base}/api/v1/forecasts", json=body, headers=AUTH, timeout=170)
        retry_took = time.monotonic() - began
        after_retry = scalar(pg_url, "SELECT count(*) FROM forecast")
    finally:
        code, output = stop(process)
    print(
        f"\ninjected: SIGKILL to worker {worker} while its {hours:,}-row ingest ran ({seen!r}); "
        f"client saw {outcome}; rows after kill {after_kill}; replacement worker {replacement}; "
        f"retry {retried.status_code} in {retry_took:.1f}s -> {after_retry:,} rows"
    )
    answered = outcome.get("response")
    assert not isinstance(answered, requests.Response) or answered.status_code >= 500
    assert after_kill == 0  # all-or-nothing: nothing of the killed request
    assert replacement != worker
    assert retried.status_code == 200 and retried.json()["upserted"] == hours, output[-3000:]
    assert after_retry == hours
    assert code == 0, output
