"""Push delivery at the provider's speed: workers against the floor of a bare client, same run.

Set-up: a fresh PostgreSQL database migrated by ``flask db upgrade``; a
provider stand-in in its own process (``bench/provider.py``: asyncio, listen
backlog 4,096) that answers every POST after BENCH_PUSH_LATENCY (default
0.05 s). Its ceiling (latency 0, a bare aiohttp client at the highest
concurrency) is measured first and printed.

1. Clients: POSTs to the stand-in from aiohttp and from httpx (HTTP/1.1) for
   BENCH_PUSH_CLIENT_SECONDS (3) each, at concurrency 4, 16, 64 and 256:
   requests/s against the latency's ceiling (concurrency / latency). This
   chose the senders' client.
2. Deliveries: one heat alarm for a market with N subscribed devices (full
   10,000), workers as real ``flask push worker`` processes
   (PUSH_WORKER_CONCURRENCY=C each, full 64), up before the ingest. For 1 and
   2 workers: deliveries/s (N / first call to last accepted call) and the time
   from the ingest's answer to the last accepted call. The floor: the same N
   POSTs at the same total concurrency (C, 2C) from a bare aiohttp client with
   no database, measured in the same run.
   Goals: 2 workers >= 0.6 x the floor at 2C; time to the last delivery
   <= 1.5 x (N / floor rate) + 2 s; 2 workers >= 1.8 x one.
3. Memory: one alarm owed to M devices (full 100,000), 2 workers: the
   workers' peak RSS (VmHWM) once the fan-out has made every delivery row and
   15 s of sending have passed (most deliveries still pending).
4. Ingest latency: one forecast hour that raises a heat alarm, posted through
   the app (in-process test client) for a market with 10,000 subscribers and
   for one with none, alternating. Both commit the alarm and one fan-out job.
   Goal: median with 10,000 / median with none <= 1.2.

Run::

    .venv/bin/python bench/push.py
    BENCH_QUICK=1 .venv/bin/python bench/push.py

``BENCH_DATABASE_URL`` names the PostgreSQL server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import httpx

from bench import report, session, sizes
from bench.report import Series
from tests.helpers import BIN, child_env, flask, free_port, launch, query, stop_many, wait_for_http
from weather.times import KST

LATENCY = float(os.environ.get("BENCH_PUSH_LATENCY", "0.05"))
CLIENT_SECONDS = float(os.environ.get("BENCH_PUSH_CLIENT_SECONDS", "3"))
MEMORY_SECONDS = 15.0
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = json.dumps({"push_token": "bench-123456", "platform": "android", "alarm": {"id": 1, "title": "폭염"}}).encode()


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


class StandIn:
    """bench/provider.py in its own process."""

    def __init__(self, latency: float) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/push"
        self.process = launch([sys.executable, "-m", "bench.provider", str(port), str(latency)], env=child_env())
        wait_for_http(f"{self.base}/stats", self.process, timeout=30)

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.base}/stats").json()

    def reset(self) -> None:
        httpx.post(f"{self.base}/reset")


class Lanes:
    """Work for ``concurrency`` lanes: ``n`` requests, or as many as fit in ``seconds``."""

    def __init__(self, n: int | None = None, seconds: float | None = None) -> None:
        self.left = n
        self.deadline = time.perf_counter() + seconds if seconds else None
        self.done = 0

    def take(self) -> bool:
        if self.deadline is not None and time.perf_counter() > self.deadline:
            return False
        if self.left is not None:
            if self.left <= 0:
                return False
            self.left -= 1
        return True


async def _aiohttp_blast(url: str, lanes: Lanes, concurrency: int) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def lane() -> None:
            while lanes.take():
                async with client.post(url, data=BODY, headers={"Content-Type": "application/json"}) as response:
                    await response.read()
                    assert response.status == 200
                lanes.done += 1

        await asyncio.gather(*(lane() for _ in range(concurrency)))


async def _httpx_blast(url: str, lanes: Lanes, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def lane() -> None:
            while lanes.take():
                response = await client.post(url, content=BODY, headers={"Content-Type": "application/json"})
                assert response.status_code == 200
                lanes.done += 1

        await asyncio.gather(*(lane() for _ in range(concurrency)))


BLASTS = {"aiohttp": _aiohttp_blast, "httpx": _httpx_blast}


def rate(client: str, url: str, concurrency: int, n: int | None = None, seconds: float | None = None) -> float:
    """Requests/s of a bare ``client`` at ``concurrency`` (no database): ``n`` POSTs, or those of ``seconds``."""
    lanes = Lanes(n, seconds)
    began = time.perf_counter()
    asyncio.run(BLASTS[client](url, lanes, concurrency))
    return lanes.done / (time.perf_counter() - began)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def running_workers(url: str, workers: int, concurrency: int, hook: StandIn) -> Iterator[list]:
    """``workers`` ``flask push worker`` processes, registered with procrastinate before the body runs."""
    env = child_env(url, PUSH_WEBHOOK_URL=hook.url, PUSH_WORKER_CONCURRENCY=str(concurrency), LOG_LEVEL="WARNING")
    processes = [
        launch([str(BIN / "flask"), "push", "worker"], env=env, output=session.temp_dir() / "worker.log")
        for _ in range(workers)
    ]
    try:
        wait(lambda: query(url, "SELECT count(*) FROM procrastinate_workers")[0][0] >= workers, 60, "workers start")
        hook.reset()
        yield processes
    finally:
        stop_many(processes)
        query(url, "DELETE FROM procrastinate_workers")


def wait(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what}: not within {seconds:g} s")
        time.sleep(0.05)


def raise_alarm(app, market: int, offset: int) -> tuple[int, float]:
    """The heat alarm's id and the moment the ingest answered."""
    response = app.test_client().post("/api/v1/forecasts", json=heat(market, offset), headers=AUTH)
    answered = time.time()
    assert response.status_code == 200, response.json
    [alarm] = response.json["alarms"]
    return alarm["id"], answered


def sent(url: str, alarm: int) -> int:
    return query(url, "SELECT sent_to_devices FROM market_alarm_log WHERE id = :id", {"id": alarm})[0][0]


def deliver(url: str, app, market: int, devices: int, workers: int, concurrency: int, offset: int, hook: StandIn):
    """One alarm to ``devices`` devices with ``workers`` worker processes: (deliveries/s, s to the last)."""
    with running_workers(url, workers, concurrency, hook):
        alarm, answered = raise_alarm(app, market, offset)
        wait(lambda: sent(url, alarm) >= devices, 1200, "every delivery sent")
        stats = hook.stats()
        return devices / (stats["last_done"] - stats["first_at"]), stats["last_done"] - answered


def memory(url: str, app, market: int, devices: int, concurrency: int, offset: int, hook: StandIn, seconds: float):
    """Peak RSS (MB) of 2 workers sending an alarm owed to ``devices``: fan-out done, then ``seconds`` of sending."""
    with running_workers(url, 2, concurrency, hook) as processes:
        alarm, _ = raise_alarm(app, market, offset)
        owed = "SELECT count(*) FROM push_delivery WHERE alarm_id = :id"
        wait(lambda: query(url, owed, {"id": alarm})[0][0] >= devices, 600, "fan-out")
        time.sleep(seconds)
        return max(peak_rss_mb(p.pid) for p in processes), sent(url, alarm)


def load_note() -> str:
    return "load average (1, 5, 15 min): " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> int:
    session.begin("bench/push.py", __doc__)
    devices = sizes.size(10_000, 3_000, 200)
    many = sizes.size(100_000, 20_000, 300)
    subscribers = sizes.size(10_000, 10_000, 200)
    concurrency = sizes.size(64, 64, 8)
    runs = sizes.size(15, 6, 2)
    repeats = sizes.size(2, 1, 1)
    print(load_note())

    ceiling_hook = StandIn(0.0)
    hook = StandIn(LATENCY)
    try:
        ceiling = max(rate("aiohttp", ceiling_hook.url, c, seconds=CLIENT_SECONDS) for c in (64, 256))
        print(f"\nprovider stand-in ceiling (latency 0, bare aiohttp client): {ceiling:,.0f} requests/s")

        rows = []
        for c in (4, 16, 64, 256):
            rows.append([c, c / LATENCY, *(rate(client, hook.url, c, seconds=CLIENT_SECONDS) for client in BLASTS)])
            rows[-1] += [rows[-1][2] / rows[-1][1], rows[-1][3] / rows[-1][1]]
        report.print_table(
            f"Bare clients, provider latency {LATENCY:g} s, {CLIENT_SECONDS:g} s each"
            " (requests/s; ceiling = concurrency / latency)",
            ["concurrency", "ceiling", "aiohttp", "httpx", "aiohttp / ceiling", "httpx / ceiling"],
            rows,
        )

        with session.temp_database() as url:
            assert flask(url, "db", "upgrade").returncode == 0
            os.environ["DATABASE_URL"] = url
            os.environ["API_TOKEN"] = TOKEN
            from app import create_app

            app = create_app({"LOG_LEVEL": "WARNING"})
            fans = add_market(url, "배송 시장", devices, 1)
            crowd = add_market(url, "구독 많은 시장", subscribers, devices + 1)
            quiet = add_market(url, "구독 없는 시장", 0, 0)
            multitude = add_market(url, "구독 아주 많은 시장", many, devices + subscribers + 1)

            floors = {w: Series(f"floor at {w * concurrency}") for w in (1, 2)}
            rates = {w: Series(f"{w} worker{'s' if w > 1 else ''}") for w in (1, 2)}
            to_last = {w: Series(f"{w} to last") for w in (1, 2)}
            offset = 1
            for _ in range(repeats):
                for workers in (1, 2):
                    floors[workers].values.append(rate("aiohttp", hook.url, workers * concurrency, n=devices))
                    speed, last = deliver(url, app, fans, devices, workers, concurrency, offset, hook)
                    rates[workers].values.append(speed)
                    to_last[workers].values.append(last)
                    offset += 1
            report.print_table(
                f"Deliveries, {devices} devices, provider latency {LATENCY:g} s, PUSH_WORKER_CONCURRENCY={concurrency}",
                [
                    "workers",
                    "runs",
                    "deliveries/s",
                    "floor/s (same total concurrency)",
                    "ratio vs floor",
                    "s from ingest answer to last",
                    "goal s",
                    "ratio vs 1 worker",
                ],
                [
                    [
                        rates[w].name,
                        len(rates[w].values),
                        rates[w].median,
                        floors[w].median,
                        rates[w].median / floors[w].median,
                        to_last[w].median,
                        1.5 * devices / floors[w].median + 2,
                        rates[w].median / rates[1].median,
                    ]
                    for w in (1, 2)
                ],
            )

            peak, done = memory(url, app, multitude, many, concurrency, offset, hook, MEMORY_SECONDS)
            offset += 1
            print(
                f"\nOne alarm owed to {many:,} devices, 2 workers, fan-out done then {MEMORY_SECONDS:g} s of sending"
                f" ({done:,} sent, {many - done:,} still pending): peak worker RSS {peak:.0f} MB"
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

            latency = report.alternate(
                runs, {f"{subscribers} subscribers": ingest(crowd), "no subscribers": ingest(quiet)}
            )
            series = list(latency.values())
            report.series_table("Ingest latency (one alarm raised)", series, series[1], unit="ms", scale=1000)
            with app.app_context():
                from models import db

                db.engine.dispose()
    finally:
        stop_many([ceiling_hook.process, hook.process])
    print(load_note())
    report.goal("2 workers deliveries/s / floor", rates[2].median / floors[2].median, 0.6, lower_is_better=False)
    report.goal(
        "2 workers: s to last delivery / (1.5 x N / floor + 2 s)",
        to_last[2].median / (1.5 * devices / floors[2].median + 2),
        1.0,
    )
    report.goal("2 workers / 1 worker deliveries/s", rates[2].median / rates[1].median, 1.8, lower_is_better=False)
    report.goal(f"ingest with {subscribers} subscribers / none", series[0].median / series[1].median, 1.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
