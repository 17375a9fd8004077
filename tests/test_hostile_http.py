"""Hostile input against the real server: entrypoint.sh, gunicorn (two workers, weather/serving.py), PostgreSQL.

One test per class of the audit: unauthenticated work, forged cursors, dates
out of range, enumeration of devices, oversized bodies, worker timeouts. Every
answer is a 4xx (the timeout: 503) in the API's JSON error shape and smaller
than MAX_ANSWER_BYTES; a watcher polls /healthz all through each test, and the
gunicorn log shows no worker timed out or killed. Timings and sizes are
printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

from tests.api_helpers import post_market
from tests.conftest import API_TOKEN, AUTH, PG_SERVER_URL
from tests.helpers import REPO, child_env, free_port, scalar, wait_for_http
from tests.support.slow_clients import probe, slow_clients
from weather.cursor import encode_cursor
from weather.times import KST

MAX_ANSWER_BYTES = 4096  # "a few KB at most"
WORKER_DEATH = ("WORKER TIMEOUT", "SIGKILL", "Traceback", "Worker exiting (pid")
DEVICE_TOKEN = "hostile-http-device"
JSON = {"Content-Type": "application/json"}
LIMIT = 4 * 1024 * 1024  # MAX_CONTENT_LENGTH's default


@dataclass
class Server:
    process: subprocess.Popen
    port: int
    log: Path
    url: str  # its database
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def launch(database_url: str, log: Path, **env: str) -> Server:
    """``./entrypoint.sh`` with its output in ``log``; ready when /readyz answers."""
    port = free_port()
    environment = child_env(database_url, PORT=str(port), API_TOKEN=API_TOKEN, **{"WEB_CONCURRENCY": "2", **env})
    with log.open("w") as output:
        process = subprocess.Popen(
            ["./entrypoint.sh"], cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT
        )
    server = Server(process, port, log, database_url)
    wait_for_http(f"{server.base}/readyz", process, timeout=120)
    return server


def shut_down(server: Server) -> None:
    server.process.terminate()
    server.process.wait(timeout=30)


@contextmanager
def database(pg_admin) -> Iterator[str]:
    name = f"wbtest_hostile_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def server(pg_admin, tmp_path_factory) -> Iterator[Server]:
    """The service with one market, one device and 30 forecast hours (so cursors exist)."""
    with database(pg_admin) as url:
        running = launch(url, tmp_path_factory.mktemp("hostile") / "gunicorn.log", REQUEST_STATEMENT_TIMEOUT="2")
        try:
            api = f"{running.base}/api/v1"
            market = post_market(running.base)
            device = requests.post(
                f"{api}/devices", json={"push_token": DEVICE_TOKEN, "platform": "ios"}, timeout=30
            ).json()["id"]
            rows = [
                {"market_id": market, "forecast_time": f"{day.isoformat()}T12:00:00+09:00", "temperature": 34.0}
                for day in (datetime.now(KST).date() + timedelta(days=days) for days in range(1, 31))
            ]
            ingested = requests.post(f"{api}/forecasts", json={"forecasts": rows}, headers=AUTH, timeout=60)
            assert ingested.status_code == 200, ingested.text
            running.ids.update(market=market, device=device)
            yield running
        finally:
            shut_down(running)


@dataclass
class Answer:
    name: str
    status: int
    body: bytes
    seconds: float

    @property
    def json(self) -> dict:
        return json.loads(self.body)


def check_error(answer: Answer, statuses: range | tuple[int, ...] = range(400, 500)) -> dict:
    """``answer`` is an error in the API's shape, small; return its JSON."""
    assert answer.status in statuses, (answer.name, answer.status, answer.body[:500])
    assert len(answer.body) < MAX_ANSWER_BYTES, (answer.name, len(answer.body), answer.body[:500])
    body = answer.json
    assert {"error", "message", "status"} <= set(body) and body["status"] == answer.status, (answer.name, body)
    return body


def send(server: Server, name: str, method: str, path: str, **kwargs) -> Answer:
    started = time.monotonic()
    response = requests.request(method, f"{server.base}{path}", timeout=120, **kwargs)
    return Answer(name, response.status_code, response.content, time.monotonic() - started)


def raw(server: Server, name: str, head: bytes) -> Answer:
    """Send only ``head`` (request line and headers) and read the whole answer."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as connection:
        connection.sendall(head)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head_part, _, body = data.partition(b"\r\n\r\n")
    return Answer(name, int(head_part.split()[1]), body, time.monotonic() - started)


@contextmanager
def healthz_watched(server: Server) -> Iterator[list[float]]:
    """Poll /healthz in the background; afterwards every poll must have answered 200."""
    latencies: list[float] = []
    failures: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = requests.get(f"{server.base}/healthz", timeout=20).status_code
                if status != 200:
                    failures.append(f"status {status}")
            except requests.RequestException as exc:
                failures.append(repr(exc))
            latencies.append(time.monotonic() - started)
            stop.wait(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    log_before = len(server.log_text())
    try:
        yield latencies
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not failures, failures
    assert latencies
    new_log = server.log_text()[log_before:]
    assert not [word for word in WORKER_DEATH if word in new_log], new_log[-3000:]
    print(f"  /healthz: {len(latencies)} polls, all 200, slowest {max(latencies) * 1000:.0f} ms")


def report(answers: list[Answer]) -> None:
    for answer in answers:
        print(f"  {answer.name}: {answer.status}, {len(answer.body)} bytes, {answer.seconds * 1000:.0f} ms")


def in_parallel(calls: list[Callable[[], Answer]]) -> list[Answer]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda call: call(), calls))


# --- unauthenticated work, unbounded lists, floods of fields and errors --------------------------------


def test_unauthenticated_and_oversized_work_is_refused_cheaply(server):
    device, market = server.ids["device"], server.ids["market"]
    subscriptions = f"/api/v1/devices/{device}/subscriptions"
    huge_types = json.dumps({"subscriptions": [{"market_id": market, "alarm_types": ["HEAT"] * 466_000}]})
    many_types = json.dumps({"subscriptions": [{"market_id": market, "alarm_types": ["HEAT"] * 50_000}]})
    bad_subscriptions = json.dumps({"subscriptions": [{"market_id": "x", "alarm_types": ["NOPE"]}] * 1000})
    unknown_flood = "{" + ",".join(f'"f{i}": 1' for i in range(300_000)) + "}"
    small_flood = "{" + ",".join(f'"f{i}": 1' for i in range(1_000)) + "}"
    long_key = json.dumps({"k" * 10_000: 1})
    empty_rows = json.dumps({"forecasts": [{}] * 1_000_000})
    bad_rows = json.dumps({"forecasts": [{"market_id": "x", "forecast_time": "y"}] * 20_000})
    device_token = {**JSON, "X-Push-Token": DEVICE_TOKEN}
    calls: list[tuple[str, str, str, str, dict, int]] = [
        ("466,000 alarm types, no token", "PUT", subscriptions, huge_types, JSON, 401),
        ("466,000 alarm types, wrong token", "PUT", subscriptions, huge_types, {**JSON, "X-Push-Token": "x"}, 401),
        ("466,000 alarm types, device's token", "PUT", subscriptions, huge_types, device_token, 413),
        ("50,000 alarm types, device's token", "PUT", subscriptions, many_types, device_token, 422),
        ("1,000 bad subscriptions", "PUT", subscriptions, bad_subscriptions, device_token, 422),
        ("register: 300,000 unknown fields", "POST", "/api/v1/devices", unknown_flood, JSON, 413),
        ("register: 1,000 unknown fields", "POST", "/api/v1/devices", small_flood, JSON, 422),
        ("create market without token, 3 MB", "POST", "/api/v1/markets", unknown_flood, JSON, 401),
        ("update market without token, 3 MB", "PATCH", f"/api/v1/markets/{market}", unknown_flood, JSON, 401),
        ("ingest without token, 3 MB", "POST", "/api/v1/forecasts", empty_rows, JSON, 401),
        ("create market: 300,000 unknown fields", "POST", "/api/v1/markets", unknown_flood, {**JSON, **AUTH}, 413),
        ("create market: 1,000 unknown fields", "POST", "/api/v1/markets", small_flood, {**JSON, **AUTH}, 422),
        ("create market: a 10,000-character field name", "POST", "/api/v1/markets", long_key, {**JSON, **AUTH}, 422),
        ("ingest: 1,000,000 empty rows", "POST", "/api/v1/forecasts", empty_rows, {**JSON, **AUTH}, 422),
        ("ingest: 20,000 bad rows", "POST", "/api/v1/forecasts", bad_rows, {**JSON, **AUTH}, 422),
    ]
    before = scalar(server.url, "SELECT count(*) FROM subscription") or 0
    print()
    with healthz_watched(server):
        answers = in_parallel(
            [
                lambda c=call: send(server, c[0], c[1], c[2], data=c[3].encode(), headers=c[4])
                for call in calls * 2  # each twice: both workers busy with hostile requests at once
            ]
        )
    report(answers)
    for answer, (*_, expected) in zip(answers, calls * 2, strict=True):
        body = check_error(answer, (expected,))
        if expected == 422:
            assert 0 < len(body["fields"]) <= 10, body
    named = {a.name: a.json for a in answers}
    assert set(named["register: 1,000 unknown fields"]["fields"]) == {"f0", "f1", "f2", "f3", "f4", "_schema"}
    assert "1000 unknown fields" in named["register: 1,000 unknown fields"]["fields"]["_schema"][0]
    assert "subscriptions.0.alarm_types" in named["50,000 alarm types, device's token"]["fields"]
    assert "forecasts" in named["ingest: 1,000,000 empty rows"]["fields"]
    assert (scalar(server.url, "SELECT count(*) FROM subscription") or 0) == before


# --- forged cursors ---------------------------------------------------------------------------------


def unsigned(*key: object) -> str:
    """A cursor as this API issued them before they were signed: base64 of the JSON sort key."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def test_forged_cursors_are_422_before_parsing_and_pages_span_workers(server):
    market = server.ids["market"]
    forecasts = f"/api/v1/forecasts?market_id={market}&limit=2"
    alarm_logs = f"/api/v1/alarm-logs?market_id={market}&limit=1"
    first = requests.get(f"{server.base}{forecasts}", timeout=30).json()["next_cursor"]
    tampered = first[:-2] + ("AA" if not first.endswith("AA") else "BB")
    markets_cursor = encode_cursor(API_TOKEN, "markets.list_markets", 1)
    cases = {
        "forecasts, unsigned year 1 +01:00": (forecasts, unsigned("0001-01-01T00:00:00+01:00")),
        "forecasts, unsigned year 9999 -01:00": (forecasts, unsigned("9999-12-31T23:59:59-01:00")),
        "forecasts, tampered signature": (forecasts, tampered),
        "forecasts, a markets cursor": (forecasts, markets_cursor),
        "forecasts, 3,000 characters": (forecasts, "A" * 3000),
        "forecasts, empty": (forecasts, ""),
        # Signed with the server's key, yet out of range: still a 422, never an OverflowError.
        "forecasts, signed year 1": (
            forecasts,
            encode_cursor(API_TOKEN, "forecasts.list_forecasts", "0001-01-01T00:00:00+01:00"),
        ),
        "alarm-logs, unsigned year 9999": (alarm_logs, unsigned("9999-12-31T23:59:59-01:00", 1)),
        "alarm-logs, unsigned year 1": (alarm_logs, unsigned("0001-01-01T00:00:00+01:00", 1)),
        "alarm-logs, signed year 9999": (
            alarm_logs,
            encode_cursor(API_TOKEN, "alarm_logs.list_alarm_logs", "9999-12-31T23:59:59-01:00", 1),
        ),
        "alarm-logs, signed huge id": (
            alarm_logs,
            encode_cursor(API_TOKEN, "alarm_logs.list_alarm_logs", "2026-08-01T00:00:00+00:00", 10**30),
        ),
        "alarm-logs, a forecasts cursor": (alarm_logs, first),
    }
    print()
    with healthz_watched(server):
        answers = [
            send(server, name, "GET", path, params={"cursor": cursor}, headers=AUTH)
            for name, (path, cursor) in cases.items()
        ]
        # Pagination across both workers: each page may land on either, and both accept the other's cursors.
        seen: list[str] = []
        cursor = None
        while True:
            page = requests.get(f"{server.base}{forecasts}", params={"cursor": cursor} if cursor else {}, timeout=30)
            assert page.status_code == 200, page.text
            seen += [row["forecast_time"] for row in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
    report(answers)
    for answer in answers:
        body = check_error(answer, (422,))
        assert "cursor" in body["fields"], (answer.name, body)
    assert len(seen) == len(set(seen)) == 30, seen
    print(f"  paged through 30 forecast hours in {30 // 2} pages of 2 across both workers")


# --- dates out of range ----------------------------------------------------------------------------

OUT_OF_RANGE = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00Z",
    "1900-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
]


@pytest.mark.parametrize("moment", OUT_OF_RANGE)
def test_dates_out_of_range_are_422_naming_the_parameter(server, moment):
    market = server.ids["market"]
    before = scalar(server.url, "SELECT count(*) FROM forecast")
    cases = [
        ("forecasts start", "GET", "/api/v1/forecasts", {"params": {"market_id": market, "start": moment}}, "start"),
        ("forecasts end", "GET", "/api/v1/forecasts", {"params": {"market_id": market, "end": moment}}, "end"),
        ("alarm-logs start", "GET", "/api/v1/alarm-logs", {"params": {"start": moment}, "headers": AUTH}, "start"),
        ("alarm-logs end", "GET", "/api/v1/alarm-logs", {"params": {"end": moment}, "headers": AUTH}, "end"),
        (
            "ingest forecast_time",
            "POST",
            "/api/v1/forecasts",
            {
                "json": {"forecasts": [{"market_id": market, "forecast_time": moment, "temperature": 35.0}]},
                "headers": AUTH,
            },
            "forecasts.0.forecast_time",
        ),
    ]
    print()
    with healthz_watched(server):
        answers = [send(server, f"{name} {moment}", method, path, **kwargs) for name, method, path, kwargs, _ in cases]
    report(answers)
    for answer, (*_, parameter) in zip(answers, cases, strict=True):
        body = check_error(answer, (422,))
        assert parameter in body["fields"], (answer.name, body)
    assert scalar(server.url, "SELECT count(*) FROM forecast") == before


# --- enumeration -----------------------------------------------------------------------------------


def test_unknown_devices_and_wrong_tokens_get_the_same_answer(server):
    device = server.ids["device"]
    body = json.dumps({"subscriptions": []}).encode()
    attempts = {
        "unknown id, a token": (999_999, {"X-Push-Token": DEVICE_TOKEN}),
        "id beyond PostgreSQL's integer": (99_999_999_999, {"X-Push-Token": DEVICE_TOKEN}),
        "existing id, wrong token": (device, {"X-Push-Token": "guess"}),
        "existing id, no token": (device, {}),
        "existing id, 4 KB token": (device, {"X-Push-Token": "t" * 4_000}),
    }
    print()
    with healthz_watched(server):
        answers = [
            send(server, f"{verb} {name}", verb, path.format(id=device_id), data=body, headers={**JSON, **headers})
            for name, (device_id, headers) in attempts.items()
            for verb, path in (("PUT", "/api/v1/devices/{id}/subscriptions"), ("DELETE", "/api/v1/devices/{id}"))
        ]
    report(answers)
    for answer in answers:
        check_error(answer, (401,))
    assert len({(answer.status, answer.body) for answer in answers}) == 1
    assert scalar(server.url, f"SELECT count(*) FROM device WHERE id = {device}") == 1


# --- oversized bodies --------------------------------------------------------------------------------


def chunks(size: int) -> Iterator[bytes]:
    """A JSON object of about ``size`` bytes, sent in pieces (chunked transfer encoding)."""
    yield b'{"name": "'
    for _ in range(size // 65536):
        yield b"x" * 65536
    yield b'"}'


def test_oversized_bodies_are_413_chunked_or_declared(server):
    device, market = server.ids["device"], server.ids["market"]
    endpoints = [
        ("create market", "POST", "/api/v1/markets", AUTH),
        ("update market", "PATCH", f"/api/v1/markets/{market}", AUTH),
        ("ingest", "POST", "/api/v1/forecasts", AUTH),
        ("register device", "POST", "/api/v1/devices", {}),
        ("subscriptions", "PUT", f"/api/v1/devices/{device}/subscriptions", {"X-Push-Token": DEVICE_TOKEN}),
    ]
    print()
    with healthz_watched(server):
        answers = [
            send(server, f"{name}, chunked", method, path, data=chunks(LIMIT + 1024), headers={**JSON, **headers})
            for name, method, path, headers in endpoints
        ]
        for name, method, path, headers in endpoints:
            extra = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{extra}"
                f"Content-Length: {10**12}\r\nConnection: close\r\n\r\n"
            )
            # The body is never sent: the answer must come without reading it.
            answers.append(raw(server, f"{name}, Content-Length 1 TB", head.encode()))
    report(answers)
    for answer in answers:
        assert check_error(answer, (413,))["error"] == "request_entity_too_large"


# --- worker timeouts ---------------------------------------------------------------------------------


def test_a_request_past_the_worker_timeout_is_answered_in_the_api_error_shape(pg_admin, tmp_path):
    """Bounded inputs keep every API request far below GUNICORN_TIMEOUT; the guard behind that is
    weather/serving.py's request timeout: a 503 in the API's shape, and the worker, whose thread
    cannot be stopped, is replaced. tests/busy_app.py is the real app plus one route that never finishes."""
    with database(pg_admin) as url:
        busy = launch(
            url,
            tmp_path / "gunicorn.log",
            APP_MODULE="tests.busy_app:create_app()",
            GUNICORN_TIMEOUT="2",
            GUNICORN_GRACEFUL_TIMEOUT="2",
        )
        try:
            answer = send(busy, "busy past GUNICORN_TIMEOUT=2", "GET", "/busy")
            after = [requests.get(f"{busy.base}/healthz", timeout=30).status_code for _ in range(4)]
        finally:
            shut_down(busy)
        log = busy.log_text()
    print()
    report([answer])
    body = check_error(answer, (503,))
    assert body["error"] == "service_unavailable" and answer.seconds < 30, body
    assert after == [200] * 4
    assert "answering 503; this worker is replaced" in log, log[-3000:]
    assert "Traceback" not in log and "Error handling request" not in log, log[-3000:]


def test_a_request_stuck_behind_a_lock_is_answered_503_before_the_worker_timeout(server):
    """A long transaction holds the market table (as a careless migration or a manual fix would):
    the request's statement is cancelled after REQUEST_STATEMENT_TIMEOUT=2, the worker lives on."""
    engine = create_engine(server.url, poolclass=pool.NullPool)
    print()
    try:
        with healthz_watched(server), engine.connect() as holder:
            holder.execute(text("LOCK TABLE market IN ACCESS EXCLUSIVE MODE"))
            stuck = send(server, "GET markets while the table is locked", "GET", "/api/v1/markets")
            holder.rollback()
            freed = send(server, "GET markets after the lock", "GET", "/api/v1/markets")
    finally:
        engine.dispose()
    report([stuck, freed])
    body = check_error(stuck, (503,))
    assert body["error"] == "database_timeout", body
    assert freed.status == 200 and freed.json["items"], freed.body[:300]


# --- limits gunicorn enforces before the app -------------------------------------------------------------


def test_oversized_request_lines_and_headers_never_reach_the_app(server):
    """gunicorn refuses these itself, before the app: the answers are still in the API's JSON shape
    (weather/serving.py's ServiceProtocol, the one place gunicorn's error writer is replaced)."""
    market = server.ids["market"]
    cases = {
        "request line over 4094 bytes": (f"/api/v1/forecasts?market_id={market}&cursor={'A' * 5000}", {}, 414),
        "header over 8190 bytes": ("/api/v1/markets", {"X-Push-Token": "t" * 9000}, 431),
        "101 headers": ("/api/v1/markets", {f"X-Filler-{i}": "1" for i in range(101)}, 431),
    }
    print()
    with healthz_watched(server):
        answers = [send(server, name, "GET", path, headers=headers) for name, (path, headers, _) in cases.items()]
        garbage = raw(server, "not HTTP", b"\x16\x03\x01 hello\r\n\r\n")
    report([*answers, garbage])
    for answer, (*_, status) in zip(answers, cases.values(), strict=True):
        check_error(answer, (status,))
    check_error(garbage, (400,))


def test_slow_clients_never_starve_the_service(server):
    """Issue #22, must-show 1: 20 clients trickle their headers and 20 a declared 1 MB body, reconnecting
    whenever the server closes them, for 20 s; meanwhile /healthz and a database-backed read are probed
    every 0.5 s, each with 1 s to answer (a kubelet's probe, with a third of its 3 s)."""
    market = server.ids["market"]
    urls = [f"{server.base}/healthz", f"{server.base}/api/v1/forecasts?market_id={market}&limit=5"]
    print()
    with (
        slow_clients(server.port, headers=20, bodies=20, body_path="/api/v1/forecasts", body_headers=AUTH) as attack,
        healthz_watched(server),
    ):
        probes = probe(urls, seconds=20)
    failed = [p for p in probes if p.status != 200]
    slowest = max(p.seconds for p in probes)
    print(
        f"  {len(probes)} probes, {len(failed)} failed, slowest {slowest * 1000:.0f} ms;"
        f" slow clients: {attack.connections} connections, server answers {attack.answers}"
    )
    assert len(probes) >= 60 and not failed, failed[:5]
    # The header tricklers were cut off by the header deadline (408) and came back.
    assert attack.answers.get("408", 0) >= 20 and attack.connections > 40, attack
