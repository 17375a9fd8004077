"""LOG_FORMAT=json: every line of a start-up, a push worker run and a forecast fetch is one JSON object.

Each process is the real one (entrypoint.sh with gunicorn, ``flask push worker`` on
PostgreSQL, ``flask forecasts fetch`` against the KMA stand-in), and every line it
writes must parse, with level, logger and message; migration lines carry their revision.
"""

from __future__ import annotations

import json
import signal
import subprocess

import flask_migrate
import requests

from models import db
from tests.api_helpers import DAY, create_market, hour, ingest, register_device, subscribe
from tests.conftest import API_TOKEN, make_app
from tests.helpers import HEAD, REPO, child_env, free_port, scalar, wait_for_http
from tests.kma_server import KmaStandIn
from tests.push_processes import WorkerProcess, wait_until
from tests.test_forecast_fetch import KEY, SEOUL, add_markets, fetch

JSON = {"LOG_FORMAT": "json"}


def json_lines(output: str) -> list[dict]:
    """Every non-empty line of ``output`` as a JSON object with level, logger and message."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "no output at all"
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"not one JSON object: {line!r}") from None
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert record["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}, record
        records.append(record)
    return records


def test_a_start_up_is_json_lines_with_revisions(sqlite_url):
    port = free_port()
    process = subprocess.Popen(
        ["./entrypoint.sh"],
        cwd=REPO,
        env=child_env(sqlite_url, PORT=str(port), WEB_CONCURRENCY="1", **JSON),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", process)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    records = json_lines(output)
    loggers = {record["logger"] for record in records}
    assert {"safe_migrations", "alembic.runtime.migration", "gunicorn.error", "gunicorn.access"} <= loggers, loggers
    applied = [r for r in records if r["message"].startswith("database migration: applied ")]
    assert applied and all(r["message"].split()[3] == r["revision"] for r in applied), applied
    assert any(r.get("revision") == HEAD and "Running upgrade" in r["message"] for r in records)
    assert not any("Context impl" in r["message"] for r in records)


def test_a_worker_run_is_json_lines_and_says_its_tasks_once(pg_url):
    app = make_app(pg_url, API_TOKEN=API_TOKEN)
    with app.app_context():
        flask_migrate.upgrade()
    client = app.test_client()
    market = create_market(client)["id"]
    subscribe(client, register_device(client, "json-phone"), "json-phone", market, "HEAT")
    assert ingest(client, hour(market, f"{DAY}T15:00:00+09:00", temperature=35.0)).status_code == 200
    with app.app_context():
        db.engine.dispose()
    worker = WorkerProcess(pg_url, **JSON)
    try:
        wait_until(lambda: scalar(pg_url, "SELECT sent_to_devices FROM market_alarm_log") == 1, 60, "the push sent")
    finally:
        assert worker.stop() == 0, worker.output
    records = json_lines(worker.output)
    assert any("push recorded: alarm" in r["message"] for r in records), records
    assert sum("Adding tasks from blueprint" in r["message"] for r in records) == 1, records


def test_a_fetch_is_json_lines(sqlite_url):
    app = make_app(sqlite_url)
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
    add_markets(sqlite_url, SEOUL)
    server = KmaStandIn(KEY)
    try:
        result = fetch(sqlite_url, server, **JSON)
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    records = json_lines(result.stderr)
    assert records[-1]["logger"] == "weather.forecasts" and "1 cells ok, 0 failed" in records[-1]["message"]
