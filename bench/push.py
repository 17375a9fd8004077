"""Push delivery: deliveries/s with 1 and 2 workers, and ingest latency with 10,000 subscribers vs none.

Set-up: a fresh PostgreSQL database migrated by ``flask db upgrade``; a local
webhook provider (``tests.webhook_server``, in this process) that answers
every call after a fixed latency (BENCH_PUSH_LATENCY, default 0.1 s).

1. Throughput: N subscribed devices (full 2,000, BENCH_QUICK 600); workers run
   as real ``flask push worker`` processes (procrastinate, PUSH_WORKER_CONCURRENCY=4
   each) and are up before the ingest. Deliveries/s = N / (last accepted call
   - first call), for 1 worker, then 2 workers (a new alarm each run).
   Goal: 2 workers >= 1.8 x one.
2. Ingest latency: one forecast hour that raises a heat alarm, posted through
   the app (in-process test client) for a market with 10,000 subscribers and
   for one with none, alternating, a new day each run. Both commit the alarm
   and one fan-out job (a worker expands it into the 10,000 delivery rows);
   no provider is called. Goal: median with 10,000 / median with none <= 1.2.

Run::

    .venv/bin/python bench/push.py
    BENCH_QUICK=1 .venv/bin/python bench/push.py

``BENCH_DATABASE_URL`` names the PostgreSQL server.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, session, sizes
from bench.report import Series
from tests.helpers import BIN, child_env, flask, launch, query, stop_many
from tests.webhook_server import WebhookServer
from weather.times import KST

LATENCY = float(os.environ.get("BENCH_PUSH_LATENCY", "0.1"))
CONCURRENCY = 4
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def day(offset: int) -> str:
    return (datetime.now(KST) + timedelta(days=offset)).date().isoformat()


def heat(market: int, offset: int) -> dict:
    return {"forecasts": [{"market_id": market, "forecast_time": f"{day(offset)}T14:00:00+09:00", "temperature": 36}]}


def add_market(url: str, name: str, devices: int, first_device: int) -> int:
    [(market,)] = query(
        url,
        "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at)"
        " VALUES (:name, '서울', 37.57, 126.99, 60, 127, now(), now()) RETURNING id",
        {"name": name},
    )
    if devices:
        query(
            url,
            "WITH d AS (INSERT INTO device (push_token, platform, created_at, last_seen_at)"
            " SELECT 'bench-' || n, 'android', now(), now() FROM generate_series(:first, :last) AS n RETURNING id)"
            " INSERT INTO subscription (device_id, market_id, alarm_type) SELECT id, :market, 'HEAT' FROM d",
            {"first": first_device, "last": first_device + devices - 1, "market": market},
        )
    return market


def throughput(url: str, app, market: int, devices: int, workers: int, offset: int, hook) -> float:
    """Deliveries/s of one alarm to ``devices`` devices with ``workers`` worker processes."""
    env = child_env(
        url,
        PUSH_WEBHOOK_URL=hook.url,
        PUSH_WORKER_CONCURRENCY=str(CONCURRENCY),
        LOG_LEVEL="WARNING",
    )
    processes = [
        launch([str(BIN / "flask"), "push", "worker"], env=env, output=session.temp_dir() / "worker.log")
        for _ in range(workers)
    ]
    try:
        deadline = time.perf_counter() + 60
        while query(url, "SELECT count(*) FROM procrastinate_workers")[0][0] < workers:
            if time.perf_counter() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.1)
        before = len(hook.received)
        response = app.test_client().post("/api/v1/forecasts", json=heat(market, offset), headers=AUTH)
        assert response.status_code == 200, response.json
        [alarm] = response.json["alarms"]
        deadline = time.perf_counter() + 600
        sql = "SELECT sent_to_devices FROM market_alarm_log WHERE id = :id"
        while query(url, sql, {"id": alarm["id"]})[0][0] < devices:
            if time.perf_counter() > deadline:
                raise RuntimeError("deliveries did not finish")
            time.sleep(0.05)
        calls = hook.received[before:]
        return devices / (max(c.done for c in calls if c.done) - min(c.at for c in calls))
    finally:
        stop_many(processes)
        query(url, "DELETE FROM procrastinate_workers")


def main() -> int:
    session.begin("bench/push.py", __doc__)
    devices = sizes.size(2000, 600, 40)
    subscribers = sizes.size(10_000, 10_000, 200)
    runs = sizes.size(15, 6, 2)
    hook = WebhookServer(latency=LATENCY)
    with session.temp_database() as url:
        assert flask(url, "db", "upgrade").returncode == 0
        os.environ["DATABASE_URL"] = url
        os.environ["API_TOKEN"] = TOKEN
        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING"})
        fans = add_market(url, "배송 시장", devices, 1)
        crowd = add_market(url, "구독 많은 시장", subscribers, devices + 1)
        quiet = add_market(url, "구독 없는 시장", 0, 0)

        rates = {1: Series("1 worker"), 2: Series("2 workers")}
        offset = 1
        for _ in range(sizes.size(2, 1, 1)):
            for workers in (1, 2):
                rates[workers].values.append(throughput(url, app, fans, devices, workers, offset, hook))
                offset += 1
        report.print_table(
            f"Deliveries/s, {devices} devices, provider latency {LATENCY:g} s, concurrency {CONCURRENCY}/worker",
            ["workers", "runs", "median deliveries/s", "ratio vs 1 worker"],
            [[s.name, len(s.values), s.median, s.median / rates[1].median] for s in rates.values()],
        )

        client = app.test_client()

        def ingest(market: int):
            def measure() -> float:
                nonlocal offset
                offset += 1
                began = time.perf_counter()
                response = client.post("/api/v1/forecasts", json=heat(market, offset - 40), headers=AUTH)
                took = time.perf_counter() - began
                assert response.status_code == 200 and len(response.json["alarms"]) == 1, response.json
                return took

            return measure

        latency = report.alternate(runs, {f"{subscribers} subscribers": ingest(crowd), "no subscribers": ingest(quiet)})
        series = list(latency.values())
        report.series_table("Ingest latency (one alarm raised)", series, series[1], unit="ms", scale=1000)
        hook.close()
        with app.app_context():
            from models import db

            db.engine.dispose()
    ok = report.goal("2 workers / 1 worker deliveries/s", rates[2].median / rates[1].median, 1.8, lower_is_better=False)
    ok &= report.goal(f"ingest with {subscribers} subscribers / none", series[0].median / series[1].median, 1.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
