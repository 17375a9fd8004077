"""Push workers as real processes on PostgreSQL: procrastinate, a flaky provider, a SIGKILL.

The service runs through entrypoint.sh and gunicorn; workers run as
``flask push worker`` processes; the provider is a local webhook that fails
about 30% of requests. Nothing here is in-process but the provider.
"""

from __future__ import annotations

import collections
import time
from datetime import datetime, timedelta

import requests

from models import db
from tests.api_helpers import create_market, post_market, register_device, subscribe
from tests.conftest import API_TOKEN, AUTH, make_app
from tests.helpers import execute, flask, scalar, wait_for_http
from tests.push_processes import WorkerProcess, wait_until
from tests.test_entrypoint import start, stop
from tests.webhook_server import WebhookServer
from weather.times import KST

DEVICES = 300
CONCURRENCY = 4


def subscribe_devices(url: str, market: int, count: int) -> None:
    """``count`` devices subscribed to the market's heat alarms (set up in SQL: the API is not under test here)."""
    execute(
        url,
        "INSERT INTO device (push_token, platform, created_at, last_seen_at)"
        f" SELECT 'phone-' || n, 'android', now(), now() FROM generate_series(1, {count}) AS n",
        f"INSERT INTO subscription (device_id, market_id, alarm_type) SELECT id, {market}, 'HEAT' FROM device",
    )


def alarm_counts(base: str, market: int) -> tuple[int, int, int]:
    [alarm] = requests.get(f"{base}/api/v1/alarm-logs", params={"market_id": market}, headers=AUTH, timeout=10).json()[
        "items"
    ]
    return alarm["sent_to_devices"], alarm["pending_deliveries"], alarm["failed_deliveries"]


def heat(market: int, days: int = 1) -> dict:
    """A heat-wave forecast ``days`` after today (Korea): inside the ingest's forecast window."""
    when = (datetime.now(KST) + timedelta(days=days)).date().isoformat()
    return {"forecasts": [{"market_id": market, "forecast_time": f"{when}T14:00:00+09:00", "temperature": 36.0}]}


def test_every_device_gets_the_alarm_despite_a_flaky_provider_and_a_killed_worker(pg_url):
    hook = WebhookServer(failure_rate=0.3, latency=0.05)
    env = {
        "API_TOKEN": API_TOKEN,
        "PUSH_WEBHOOK_URL": hook.url,
        "PUSH_TIMEOUT_SECONDS": "2",
        "PUSH_RETRY_BASE_SECONDS": "0.2",
        "PUSH_RETRY_MAX_SECONDS": "1",
        "PUSH_MAX_ATTEMPTS": "30",
        "PUSH_STALLED_SECONDS": "3",
        "PUSH_WORKER_CONCURRENCY": str(CONCURRENCY),
    }
    web, port = start(pg_url, **env)
    base = f"http://127.0.0.1:{port}"
    workers: list[WorkerProcess] = []
    try:
        wait_for_http(f"{base}/readyz", web, timeout=60)
        market = post_market(base)
        subscribe_devices(pg_url, market, DEVICES)
        workers = [WorkerProcess(pg_url, **env) for _ in range(2)]
        wait_until(lambda: scalar(pg_url, "SELECT count(*) FROM procrastinate_workers") == 2, 60, "both workers up")

        ingest = requests.post(f"{base}/api/v1/forecasts", json=heat(market), headers=AUTH, timeout=30)
        answered_at = time.time()
        assert ingest.status_code == 200, ingest.text
        assert [a["sent_to_devices"] for a in ingest.json()["alarms"]] == [0]

        wait_until(lambda: len(hook.accepted()) >= DEVICES // 3, 120, "a third of the devices reached")
        workers[0].kill()
        # Claimed and not yet settled at the kill (either worker's): the most that can be sent twice.
        in_flight = scalar(pg_url, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'")
        workers.append(WorkerProcess(pg_url, **env))  # the restarted worker (a new pod)

        wait_until(lambda: alarm_counts(base, market)[0] >= DEVICES, 180, "sent_to_devices reaching 300")
        counts = alarm_counts(base, market)
    finally:
        codes = [w.stop() for w in workers[1:]]
        web_code, web_output = stop(web)
        hook.close()

    accepted = collections.Counter(r.body["push_token"] for r in hook.accepted())
    duplicates = sum(n - 1 for n in accepted.values())
    first_delivery = min(r.done for r in hook.accepted() if r.done is not None)
    failures = len([r for r in hook.received if r.status == 503])
    recovered = "".join(w.output for w in workers[1:]).count("of a stalled worker queued again")
    print(
        f"\n{DEVICES} devices, {len(hook.received)} provider calls ({failures} answered 503), worker killed with "
        f"{in_flight} deliveries in flight, {recovered} stalled jobs recovered, {duplicates} duplicate deliveries; "
        f"first delivery {first_delivery - answered_at:+.2f} s after the ingest answered"
    )
    assert set(accepted) == {f"phone-{n}" for n in range(1, DEVICES + 1)}  # every device got the alarm
    assert duplicates <= in_flight <= 2 * CONCURRENCY  # at most what was in flight at the kill
    assert counts == (DEVICES, 0, 0)
    assert first_delivery > answered_at  # the ingest answered before any delivery happened
    assert failures > 30  # the provider really failed
    assert codes == [0, 0] and web_code == 0
    assert "Traceback" not in web_output
    # Same key on every retry of one device's delivery.
    keys = collections.defaultdict(set)
    for r in hook.received:
        keys[r.body["push_token"]].add(r.headers["idempotency-key"])
    assert all(len(k) == 1 for k in keys.values())


def test_a_trickling_provider_never_delays_an_ingest_nor_kills_a_web_worker(pg_url):
    """The issue's provider: one byte every 0.2 s. Ingests answer at once; the worker's calls hit their deadline."""
    hook = WebhookServer("trickle")
    env = {"API_TOKEN": API_TOKEN, "PUSH_WEBHOOK_URL": hook.url, "PUSH_TIMEOUT_SECONDS": "0.5"}
    web, port = start(pg_url, **env, GUNICORN_TIMEOUT="10")
    base = f"http://127.0.0.1:{port}"
    worker = None
    took = []
    try:
        wait_for_http(f"{base}/readyz", web, timeout=60)
        market = post_market(base)
        subscribe_devices(pg_url, market, 30)
        worker = WorkerProcess(pg_url, **env)
        for day in range(1, 6):
            body = heat(market, day)
            began = time.monotonic()
            response = requests.post(f"{base}/api/v1/forecasts", json=body, headers=AUTH, timeout=30)
            took.append(time.monotonic() - began)
            assert response.status_code == 200, response.text
        wait_until(lambda: "no answer within PUSH_TIMEOUT_SECONDS" in worker.output, 60, "a call cut by its deadline")
        logs = requests.get(f"{base}/api/v1/alarm-logs", params={"market_id": market}, headers=AUTH, timeout=10)
    finally:
        worker_code = worker.stop() if worker else None
        web_code, web_output = stop(web)
        hook.close()
    print(f"\ningests with a trickling provider answered in {max(took):.2f} s at most; {len(hook.received)} calls cut")
    assert max(took) < 5  # no provider call inside the request (it used to take 30 s)
    assert [(a["sent_to_devices"], a["pending_deliveries"]) for a in logs.json()["items"]] == [(0, 30)] * 5
    assert "WORKER TIMEOUT" not in web_output and "Traceback" not in web_output
    assert web_code == 0 and worker_code == 0  # SIGTERM: the worker finished (deadline-bounded) calls and left


def test_sqlite_worker_beside_make_run_delivers_with_the_recording_sender(sqlite_url):
    """The development set-up: SQLite, no queue server; `flask push worker` drains push_delivery."""
    assert flask(sqlite_url, "db", "upgrade").returncode == 0
    app = make_app(sqlite_url, API_TOKEN=API_TOKEN)
    client = app.test_client()
    market = create_market(client)["id"]
    for token in ("dev-phone-1", "dev-phone-2"):
        subscribe(client, register_device(client, token), token, market, "HEAT")
    assert client.post("/api/v1/forecasts", json=heat(market), headers=AUTH).status_code == 200
    worker = WorkerProcess(sqlite_url)
    try:
        wait_until(lambda: scalar(sqlite_url, "SELECT sent_to_devices FROM market_alarm_log") == 2, 60, "both sent")
    finally:
        code = worker.stop()
        with app.app_context():
            db.engine.dispose()
    assert code == 0
    assert worker.output.count("push recorded: alarm") == 2 and "polling push_delivery (SQLite)" in worker.output
    assert "dev-phone-1" not in worker.output  # a push token is a credential: only its tail is logged


def test_production_refuses_the_recording_sender(sqlite_url):
    result = flask(sqlite_url, "push", "worker", APP_ENV="production")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "APP_ENV=production refuses the recording push sender" in result.stderr
