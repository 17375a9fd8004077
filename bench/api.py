"""The API under gunicorn: requests/s and latency of the read paths, rows/s of the bulk ingest.

Set-up: ``./entrypoint.sh`` with WEB_CONCURRENCY=2 and API_TOKEN set, started on
a fresh PostgreSQL database (the entrypoint migrates it to head). Then, set-based
(INSERT ... SELECT generate_series), 10 markets and 1,000,000 alarm-log rows
(BENCH_QUICK: 50,000), spread evenly over the markets, so one market's log holds
100,000 rows (5,000) and a deep page of it is really deep.

Measured, everything alternating run by run:

1. HTTP, a closed loop of 4 client threads (``http.client``; gunicorn's sync
   workers close the connection after each response, so each request
   reconnects) for a few seconds per target: requests/s, p50 and p99 of
   ``GET /healthz`` (no database: the ceiling of this set-up),
   ``GET /api/v1/alarm-logs?market_id=1`` (page 1) and the same on a deep
   page (the keyset ``cursor`` of the row at 90% of market 1's log);
2. SQL, psycopg2 against the same data: the endpoint's keyset query (same
   WHERE, ORDER BY created_at, id, LIMIT limit+1) against the OFFSET query of the
   same page, on page 1 and on the deep page (the API has no OFFSET mode);
   goal: keyset / OFFSET on the deep page <= 0.1, and the deep page through the
   API no slower than page 1 (p50 ratio <= 1.2);
3. bulk ingest: one ``POST /api/v1/forecasts`` of 10,000 rows (10 markets x
   1,000 hours, new hours every run) against the same rows written row by row
   through the ORM (``session.add(Forecast(...))`` + ``flush()`` per row, one
   commit, in this process's app context); rows/s, goal ratio >= 20.

Run::

    .venv/bin/python bench/api.py
    BENCH_QUICK=1 .venv/bin/python bench/api.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_ROWS`` (alarm-log
rows), ``BENCH_RUNS``, ``BENCH_INGEST_ROWS`` and ``BENCH_SECONDS`` (per HTTP
measurement) override the sizes.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, session, sizes
from bench.report import Series
from tests.helpers import REPO, child_env, free_port, launch, libpq, query, stop, utc_instant, wait_for_http
from weather import forecast_store
from weather.forecast_rows import ForecastWindow

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MARKETS = 10
# The ingest batches walk forward in time from a few days inside the forecast window's past
# bound, and must stop a day short of its future bound (the server's default window).
WINDOW = ForecastWindow()
FIRST_BATCH_DAYS_AGO = WINDOW.max_past_days - 6
WINDOW_HOURS = int((FIRST_BATCH_DAYS_AGO + WINDOW.max_future_days - 1) * 24)
CONNECTIONS = 4
LIMIT = 50  # the endpoint's default page size
COLUMNS = "id, market_id, alarm_type, target_date, title, message, created_at, sent_to_devices"
KEYSET_SQL = (
    f"SELECT {COLUMNS} FROM market_alarm_log WHERE market_id = %s AND (created_at, id) > (%s, %s) "
    "ORDER BY created_at, id LIMIT %s"
)
PAGE1_SQL = f"SELECT {COLUMNS} FROM market_alarm_log WHERE market_id = %s ORDER BY created_at, id LIMIT %s"
OFFSET_SQL = PAGE1_SQL + " OFFSET %s"


# --------------------------------------------------------------------------- data


def seed(url: str, rows: int) -> float:
    """MARKETS markets and ``rows`` alarm-log rows, set-based; returns seconds.

    Row g: market 1 + g % MARKETS, type (g / MARKETS) % 5, date 2000-01-01 + g / (5 * MARKETS)
    (the unique key never collides), created one second after row g - 1.
    """
    started = time.perf_counter()
    query(
        url,
        "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at) "
        "SELECT 'market ' || g, 'region', 37.5665, 126.9780, 60, 127, now(), now() "
        "FROM generate_series(1, :m) AS g",
        {"m": MARKETS},
    )
    query(
        url,
        "INSERT INTO market_alarm_log (market_id, alarm_type, target_date, title, message, created_at) "
        "SELECT 1 + g % :m, (ARRAY['RAIN', 'HEAT', 'COLD', 'WIND', 'SNOW'])[1 + (g / :m) % 5], "
        "date '2000-01-01' + g / (5 * :m), 'Heavy rain warning ' || g, "
        "'Rain of 30 mm or more is expected tomorrow; cover the stalls. #' || g, "
        "timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(0, :n - 1) AS g",
        {"m": MARKETS, "n": rows},
    )
    query(url, "VACUUM ANALYZE market_alarm_log")
    query(url, "VACUUM ANALYZE market")
    return time.perf_counter() - started


def forecast_rows(count: int, run: int) -> list[dict]:
    """``count`` forecast rows over MARKETS markets, hours no earlier run used; mild weather
    (no alarm raised), every measurement given."""
    per_market = -(-count // MARKETS)
    # Inside the forecast window: batch after batch from FIRST_BATCH_DAYS_AGO on.
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=FIRST_BATCH_DAYS_AGO)
    base += timedelta(hours=run * per_market)
    rows = []
    for index in range(count):
        market, hour = 1 + index % MARKETS, index // MARKETS
        rows.append(
            {
                "market_id": market,
                "forecast_time": (base + timedelta(hours=hour)).isoformat(),
                "temperature": 20.0 + (index % 7) / 2,
                "precipitation_probability": index % 50,
                "precipitation_mm": (index % 5) / 10,
                "snowfall_cm": 0.0,
                "wind_speed": 2.0 + (index % 3),
                "sky_code": 1 + index % 4,
            }
        )
    return rows


# --------------------------------------------------------------------------- HTTP


@dataclass
class Load:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def p(self, fraction: float) -> float:
        return report.percentile(self.latencies, fraction)


def http_load(port: int, path: str, headers: dict[str, str], seconds: float) -> Load:
    """CONNECTIONS threads, each GETting ``path`` in a closed loop for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(CONNECTIONS)]
    errors = [0] * CONNECTIONS
    start = threading.Barrier(CONNECTIONS + 1)
    deadline = [0.0]

    def work(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = latencies[index]
        start.wait()
        try:
            while time.perf_counter() < deadline[0]:
                began = time.perf_counter()
                try:
                    connection.request("GET", path, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        errors[index] += 1
                    if response.will_close:
                        connection.close()
                except (OSError, http.client.HTTPException):
                    errors[index] += 1
                    connection.close()
                mine.append(time.perf_counter() - began)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join(60)
    elapsed = time.perf_counter() - began
    every = [value for mine in latencies for value in mine]
    return Load(len(every), elapsed, every, sum(errors))


def http_json(port: int, method: str, path: str, body: object | None = None) -> tuple[int, object, float]:
    """One request with the token; (status, decoded body, seconds)."""
    payload = json.dumps(body).encode() if body is not None else None
    headers = {**AUTH, "Content-Type": "application/json"} if payload else dict(AUTH)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        began = time.perf_counter()
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - began
    finally:
        connection.close()
    return response.status, json.loads(data) if data else None, elapsed


# --------------------------------------------------------------------------- SQL


def sql_page_ms(url: str, sql: str, params: tuple, repeats: int) -> float:
    """Median milliseconds of ``repeats`` executions (fetching every row) on one connection."""
    import psycopg2

    connection = psycopg2.connect(libpq(url))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)  # warm: plan, buffers
            cursor.fetchall()
            times = []
            for _ in range(repeats):
                began = time.perf_counter()
                cursor.execute(sql, params)
                cursor.fetchall()
                times.append(time.perf_counter() - began)
    finally:
        connection.close()
    return Series("", times).median * 1000


# --------------------------------------------------------------------------- ingest peer


def orm_row_by_row(app, rows: list[dict]) -> float:
    """The same rows, one ``session.add(Forecast(...))`` + ``flush()`` each, one commit; seconds."""
    from models import Forecast, db, utcnow

    with app.app_context():
        began = time.perf_counter()
        for row in rows:
            db.session.add(
                Forecast(
                    market_id=row["market_id"],
                    forecast_time=datetime.fromisoformat(row["forecast_time"]),
                    temperature=row["temperature"],
                    precipitation_probability=row["precipitation_probability"],
                    precipitation_mm=row["precipitation_mm"],
                    snowfall_cm=row["snowfall_cm"],
                    wind_speed=row["wind_speed"],
                    sky_code=row["sky_code"],
                    updated_at=utcnow(),
                )
            )
            db.session.flush()
        db.session.commit()
        elapsed = time.perf_counter() - began
        db.session.remove()
    return elapsed


def validation_only(rows: list[dict]) -> float:
    """Breakdown: the endpoint's request schema loading the batch, nothing else; seconds."""
    from weather.schemas import ForecastBatchSchema

    began = time.perf_counter()
    ForecastBatchSchema().load({"forecasts": rows})
    return time.perf_counter() - began


UPSERT_SQL = (
    "INSERT INTO forecast (market_id, forecast_time, temperature, precipitation_probability, precipitation_mm, "
    "snowfall_cm, wind_speed, sky_code, updated_at) VALUES %s ON CONFLICT (market_id, forecast_time) DO UPDATE SET "
    "temperature = excluded.temperature, precipitation_probability = excluded.precipitation_probability, "
    "precipitation_mm = excluded.precipitation_mm, snowfall_cm = excluded.snowfall_cm, "
    "wind_speed = excluded.wind_speed, sky_code = excluded.sky_code, updated_at = excluded.updated_at"
)


def sql_upsert_only(url: str, rows: list[dict]) -> float:
    """Breakdown: the same upsert as one psycopg2 ``execute_values`` (1,000 rows a statement),
    one commit; no HTTP, no validation, no alarms; seconds."""
    import psycopg2
    from psycopg2.extras import execute_values

    values = [
        (
            r["market_id"],
            r["forecast_time"],
            r["temperature"],
            r["precipitation_probability"],
            r["precipitation_mm"],
            r["snowfall_cm"],
            r["wind_speed"],
            r["sky_code"],
        )
        for r in sorted(rows, key=lambda r: (r["market_id"], r["forecast_time"]))
    ]
    connection = psycopg2.connect(libpq(url))
    try:
        began = time.perf_counter()
        with connection.cursor() as cursor:
            execute_values(
                cursor, UPSERT_SQL, values, template="(%s, %s, %s, %s, %s, %s, %s, %s, now())", page_size=1000
            )
        connection.commit()
        return time.perf_counter() - began
    finally:
        connection.close()


# --------------------------------------------------------------------------- ingest vs its floor

FLOOR_TABLE = "floor_forecast"
# The floor copies the very columns the ingest writes.
FLOOR_COLUMNS = forecast_store.COLUMNS


def seed_ingest_markets(url: str, count: int) -> list[int]:
    """``count`` more markets for the ingest-vs-floor rows; their ids."""
    rows = query(
        url,
        "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at) "
        "SELECT 'ingest market ' || g, 'ingest', 37.5665, 126.9780, 60, 127, now(), now() "
        "FROM generate_series(1, :count) AS g RETURNING id",
        {"count": count},
    )
    query(
        url,
        f"CREATE TABLE {FLOOR_TABLE} (market_id integer, forecast_time timestamptz, "
        "temperature float8, precipitation_probability integer, precipitation_mm float8, "
        "snowfall_cm float8, wind_speed float8, sky_code integer)",
    )
    return sorted(row[0] for row in rows)


def ingest_bodies(market_ids: list[int], hours: int, per_request: int, run: int) -> list[bytes]:
    """The JSON request bodies of ``len(market_ids) x hours`` rows, ``per_request`` rows each; new hours every run."""
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=run * (hours + 1))
    rows = [
        {
            "market_id": market,
            "forecast_time": (base + timedelta(hours=hour)).isoformat(),
            "temperature": 20.0 + (hour % 7) / 2,
            "precipitation_probability": hour % 50,
            "precipitation_mm": (hour % 5) / 10,
            "snowfall_cm": 0.0,
            "wind_speed": 2.0 + (hour % 3),
            "sky_code": 1 + hour % 4,
        }
        for market in market_ids
        for hour in range(hours)
    ]
    return [
        json.dumps({"forecasts": rows[start : start + per_request]}).encode()
        for start in range(0, len(rows), per_request)
    ]


def post_bodies(port: int, bodies: list[bytes]) -> float:
    """Seconds for POSTing every body in turn (each answered 200 with every row upserted)."""
    total = 0.0
    for body in bodies:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        try:
            began = time.perf_counter()
            connection.request(
                "POST", "/api/v1/forecasts", body=body, headers={**AUTH, "Content-Type": "application/json"}
            )
            response = connection.getresponse()
            answer = response.read()
            total += time.perf_counter() - began
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"ingest failed ({response.status}): {answer[:500]!r}")
    return total


def json_copy_floor(url: str, bodies: list[bytes]) -> float:
    """The floor: decode the same bodies and COPY their rows into a bare table (no index, no key), one commit."""
    import psycopg2

    query(url, f"TRUNCATE {FLOOR_TABLE}")
    connection = psycopg2.connect(libpq(url))
    try:
        began = time.perf_counter()
        with connection.cursor() as cursor:
            for body in bodies:
                rows = json.loads(body)["forecasts"]
                text = "".join(
                    "\t".join("\\N" if row.get(name) is None else str(row[name]) for name in FLOOR_COLUMNS) + "\n"
                    for row in rows
                )
                cursor.copy_expert(f"COPY {FLOOR_TABLE} ({', '.join(FLOOR_COLUMNS)}) FROM STDIN", io.StringIO(text))
        connection.commit()
        return time.perf_counter() - began
    finally:
        connection.close()


# --------------------------------------------------------------------------- main


def main() -> int:
    session.begin("bench/api.py", __doc__)
    rows = int(os.environ.get("BENCH_ROWS") or sizes.size(1_000_000, 50_000, 2_000))
    runs = int(os.environ.get("BENCH_RUNS") or sizes.size(3, 2, 1))
    ingest_rows = int(os.environ.get("BENCH_INGEST_ROWS") or sizes.size(10_000, 10_000, 200))
    # Three batches a run (ours, the peer, the breakdown), each on hours no batch used before.
    if 3 * runs * -(-ingest_rows // MARKETS) > WINDOW_HOURS:
        sys.exit(f"bench/api.py: BENCH_RUNS={runs} x BENCH_INGEST_ROWS={ingest_rows} do not fit the forecast window")
    seconds = float(os.environ.get("BENCH_SECONDS") or {"full": 3.0, "quick": 1.5, "smoke": 0.3}[sizes.MODE])
    repeats = sizes.size(30, 15, 3)
    per_market = rows // MARKETS
    deep = max(1, per_market * 9 // 10)  # rows before the deep page

    from app import create_app
    from weather.cursor import cursor_secret, encode_cursor

    url = session.create_database()
    port = free_port()
    env = child_env(url, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2", API_TOKEN=TOKEN)
    log = session.temp_dir("bench-api-") / "gunicorn.log"
    server = launch(["./entrypoint.sh"], cwd=REPO, env=env, output=log)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", server, timeout=120)
    except AssertionError as exc:
        raise RuntimeError(f"entrypoint.sh never became ready:\n{log.read_text(errors='replace')[-3000:]}") from exc
    print("\nserver: ./entrypoint.sh, WEB_CONCURRENCY=2, on a fresh database (migrated by the entrypoint)")
    print(f"seeded {MARKETS} markets and {rows:,} alarm-log rows in {seed(url, rows):.1f}s", flush=True)

    # The deep page: the cursor of the row just before it, as the API encodes it.
    created_at, last_id = query(
        url,
        "SELECT created_at, id FROM market_alarm_log WHERE market_id = 1 ORDER BY created_at, id OFFSET :n LIMIT 1",
        {"n": deep - 1},
    )[0]
    secret = cursor_secret({"API_TOKEN": TOKEN})  # the server signs with its API_TOKEN
    cursor = encode_cursor(secret, "alarm_logs.list_alarm_logs", utc_instant(created_at).isoformat(), last_id)
    page1_path, deep_path = "/api/v1/alarm-logs?market_id=1", f"/api/v1/alarm-logs?market_id=1&cursor={cursor}"
    # Correctness first: the API's deep page is exactly the OFFSET page.
    status, body, _ = http_json(port, "GET", deep_path)
    offset_page = query(
        url,
        "SELECT id FROM market_alarm_log WHERE market_id = 1 ORDER BY created_at, id LIMIT :limit OFFSET :offset",
        {"limit": LIMIT, "offset": deep},
    )
    offset_ids = [row[0] for row in offset_page]
    if status != 200 or [item["id"] for item in body["items"]] != offset_ids:
        raise RuntimeError(f"deep page differs from the OFFSET page ({status}): {str(body)[:500]}")

    http_names = {
        "GET /healthz (ceiling)": ("/healthz", {}),
        "GET alarm-logs page 1 (keyset)": (page1_path, AUTH),
        f"GET alarm-logs deep page (keyset cursor, after {deep:,} rows)": (deep_path, AUTH),
    }
    sql_names = {
        "SQL page 1, keyset query": (PAGE1_SQL, (1, LIMIT + 1)),
        "SQL page 1, OFFSET 0": (OFFSET_SQL, (1, LIMIT + 1, 0)),
        "SQL deep page, keyset query": (KEYSET_SQL, (1, created_at, last_id, LIMIT + 1)),
        f"SQL deep page, OFFSET {deep:,}": (OFFSET_SQL, (1, LIMIT + 1, deep)),
    }
    http_loads: dict[str, list[Load]] = {name: [] for name in http_names}
    sql_ms = {name: Series(name) for name in sql_names}
    ingest_api, ingest_orm = "POST /api/v1/forecasts (bulk upsert, ours)", "ORM add + flush per row (peer)"
    ingest = {ingest_api: Series(ingest_api), ingest_orm: Series(ingest_orm)}
    only_validation = "breakdown: request schema load alone (in process)"
    only_sql = "breakdown: execute_values upsert alone (in process, no validation)"
    breakdown = {only_validation: Series(only_validation), only_sql: Series(only_sql)}

    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    batch = iter(range(10_000))

    def post_batch() -> float:
        payload = {"forecasts": forecast_rows(ingest_rows, next(batch))}
        status, body, elapsed = http_json(port, "POST", "/api/v1/forecasts", payload)
        if status != 200 or body["upserted"] != ingest_rows:
            raise RuntimeError(f"ingest failed ({status}): {str(body)[:500]}")
        return ingest_rows / elapsed

    def orm_batch() -> float:
        return ingest_rows / orm_row_by_row(app, forecast_rows(ingest_rows, next(batch)))

    def breakdown_run() -> None:
        rows_in = forecast_rows(ingest_rows, next(batch))
        breakdown[only_validation].values.append(ingest_rows / validation_only(rows_in))
        breakdown[only_sql].values.append(ingest_rows / sql_upsert_only(url, rows_in))

    # The shape: 400 markets x 100 hours, in requests of 10,000 rows.
    floor_markets = seed_ingest_markets(url, sizes.size(400, 400, 20))
    floor_hours = sizes.size(100, 100, 10)
    per_request = sizes.size(10_000, 10_000, 100)
    floor_rows = len(floor_markets) * floor_hours
    bulk_new = f"POST /api/v1/forecasts, {floor_rows:,} new rows"
    bulk_again = "POST /api/v1/forecasts, the same rows again (upsert)"
    floor = "floor: JSON decode + COPY into a bare table"
    versus_floor = {bulk_new: Series(bulk_new), bulk_again: Series(bulk_again), floor: Series(floor)}

    def floor_run(index: int) -> None:
        bodies = ingest_bodies(floor_markets, floor_hours, per_request, index)
        measures = [floor, bulk_new] if index % 2 == 0 else [bulk_new, floor]
        for name in measures:
            if name == floor:
                versus_floor[floor].values.append(json_copy_floor(url, bodies))
            else:
                versus_floor[bulk_new].values.append(post_bodies(port, bodies))
                versus_floor[bulk_again].values.append(post_bodies(port, bodies))

    started = time.perf_counter()
    try:
        for index in range(runs):
            forward = index % 2 == 0
            for name in http_names if forward else reversed(list(http_names)):
                path, headers = http_names[name]
                http_loads[name].append(http_load(port, path, headers, seconds))
            for name in sql_names if forward else reversed(list(sql_names)):
                sql, params = sql_names[name]
                sql_ms[name].values.append(sql_page_ms(url, sql, params, repeats))
            for name in (ingest_api, ingest_orm) if forward else (ingest_orm, ingest_api):
                ingest[name].values.append((post_batch if name == ingest_api else orm_batch)())
            breakdown_run()
            floor_run(index)
            print(f"  ... round {index + 1}/{runs} done ({time.perf_counter() - started:.0f}s)", flush=True)
        stored = query(url, "SELECT count(*) FROM forecast")[0][0]
        assert stored == 3 * runs * ingest_rows + runs * floor_rows, stored
    finally:
        stop(server)
        session.drop_database(url)

    # ---- tables
    ceiling = Series("", [load.rate for load in http_loads["GET /healthz (ceiling)"]])
    table = []
    for name, loads in http_loads.items():
        rate = Series(name, [load.rate for load in loads])
        table.append(
            [
                name,
                len(loads),
                rate.median,
                rate.min,
                rate.max,
                Series("", [load.p(0.5) for load in loads]).median * 1000,
                Series("", [load.p(0.99) for load in loads]).median * 1000,
                sum(load.errors for load in loads),
                rate.median / ceiling.median,
            ]
        )
    report.print_table(
        f"HTTP, {CONNECTIONS} client threads, {seconds:g} s per run ({runs} alternating runs); "
        f"{rows:,} alarm-log rows, {per_market:,} of them market 1's",
        ["what", "runs", "req/s median", "req/s min", "req/s max", "p50 ms", "p99 ms", "errors", "ratio vs /healthz"],
        table,
    )
    peers = {
        "SQL page 1, keyset query": "SQL page 1, OFFSET 0",
        "SQL page 1, OFFSET 0": "SQL page 1, OFFSET 0",
        "SQL deep page, keyset query": f"SQL deep page, OFFSET {deep:,}",
        f"SQL deep page, OFFSET {deep:,}": f"SQL deep page, OFFSET {deep:,}",
    }
    report.print_table(
        f"The endpoint's query, keyset vs OFFSET, LIMIT {LIMIT + 1} ({runs} alternating runs, median of "
        f"{repeats} executions each)",
        ["query", "runs", "median ms", "min ms", "max ms", "ratio vs OFFSET"],
        [
            [name, len(s.values), s.median, s.min, s.max, s.median / sql_ms[peers[name]].median]
            for name, s in sql_ms.items()
        ],
    )
    report.print_table(
        f"Bulk forecast ingest, {ingest_rows:,} rows per batch ({runs} alternating runs); peer: ORM row by row",
        ["how", "runs", "rows/s median", "rows/s min", "rows/s max", "ratio vs peer"],
        [
            [s.name, len(s.values), s.median, s.min, s.max, s.median / ingest[ingest_orm].median]
            for s in (*ingest.values(), *breakdown.values())
        ],
    )
    report.print_table(
        f"Bulk ingest vs its floor: {floor_rows:,} rows ({len(floor_markets)} markets x {floor_hours} hours) in "
        f"requests of {per_request:,} ({runs} alternating runs)",
        ["how", "runs", "median s", "min s", "max s", "rows/s", "ratio vs floor"],
        [
            [
                s.name,
                len(s.values),
                s.median,
                s.min,
                s.max,
                floor_rows / s.median,
                s.median / versus_floor[floor].median,
            ]
            for s in versus_floor.values()
        ],
    )
    print(
        "\nThe breakdown rows time parts of the endpoint's work on the same rows in this process: they bound "
        "what the endpoint could reach if the rest of its work cost nothing."
    )
    print()
    names = list(http_names)
    page1_p50 = Series("", [load.p(0.5) for load in http_loads[names[1]]]).median
    deep_p50 = Series("", [load.p(0.5) for load in http_loads[names[2]]]).median
    deep_keyset, deep_offset = list(sql_ms.values())[2], list(sql_ms.values())[3]
    report.goal(
        f"deep page (after {deep:,} rows), keyset / OFFSET SQL (median)", deep_keyset.median / deep_offset.median, 0.1
    )
    report.goal("API deep page / page 1, p50 latency (median)", deep_p50 / page1_p50, 1.2)
    report.goal(
        f"bulk ingest rows/s, POST {ingest_rows:,} rows / ORM row by row (median)",
        ingest[ingest_api].median / ingest[ingest_orm].median,
        20,
        lower_is_better=False,
    )
    for name in (bulk_new, bulk_again):
        report.goal(f"{name} / its floor (median)", versus_floor[name].median / versus_floor[floor].median, 15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
