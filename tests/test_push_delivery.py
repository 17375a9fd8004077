"""One delivery step against real local providers: webhook and FCM HTTP v1 stand-ins.

The alarm and its deliveries come from a real ingest on a migrated SQLite
database; ``deliver`` (what every worker runs) makes real HTTP calls. A
hostile provider (an endless body: a real ``flask push worker`` process, its
peak RSS from /proc/PID/status VmHWM) costs one bounded attempt, and no
secret of a webhook URL reaches a log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import flask_migrate
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from sqlalchemy import select

from models import Device, MarketAlarmLog, PushDelivery, db
from tests.api_helpers import create_market, hour, ingest, register_device, subscribe
from tests.conftest import API_TOKEN, AUTH, make_app
from tests.helpers import flask, scalar
from tests.push_processes import WorkerProcess, wait_until
from tests.test_push_workers import heat
from tests.webhook_server import FcmStandIn, WebhookServer
from weather.log_safety import mask_url, quiet_http_client_logs
from weather.push.deliveries import Policy, deliver
from weather.push.queue import WorkerRuntime
from weather.push.senders import MAX_RETRY_AFTER_SECONDS, FcmSender, PushSender, WebhookSender, retry_after_seconds
from weather.times import KST


def tomorrow(days: int = 1) -> str:
    """A day inside the ingest's forecast window whenever the tests run."""
    return (datetime.now(KST) + timedelta(days=days)).date().isoformat()


POLICY = Policy(
    timeout_seconds=1.0, max_attempts=3, max_age_seconds=3600, retry_base_seconds=0.1, retry_max_seconds=0.2
)


@pytest.fixture
def push_app(sqlite_url) -> Iterator[Flask]:
    app = make_app(sqlite_url, API_TOKEN=API_TOKEN)
    with app.app_context():
        flask_migrate.upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


def raise_alarm(app: Flask, *tokens: str) -> list[int]:
    """A heat alarm for a market the devices with ``tokens`` subscribe to; returns the delivery ids."""
    client = app.test_client()
    market = create_market(client)["id"]
    for token in tokens:
        subscribe(client, register_device(client, token), token, market, "HEAT")
    assert ingest(client, hour(market, f"{tomorrow()}T12:00:00+09:00", temperature=35.0)).status_code == 200
    with app.app_context():
        return list(db.session.scalars(select(PushDelivery.id).order_by(PushDelivery.id)))


# One event loop for the whole module, as in a worker: a sender's HTTP client stays bound to it.
LOOP = asyncio.new_event_loop()


def attempt(app: Flask, sender: PushSender, delivery_id: int, policy: Policy = POLICY) -> float | None:
    """One ``deliver`` call, the step every worker runs; seconds until the next attempt, or None."""
    runtime = WorkerRuntime(app, sender)
    return LOOP.run_until_complete(deliver(delivery_id, sender, policy, runtime.in_session))


def row(app: Flask, delivery_id: int) -> tuple:
    with app.app_context():
        d = db.session.get(PushDelivery, delivery_id)
        return d.state, d.attempts, d.last_error


def sent_to_devices(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(select(MarketAlarmLog.sent_to_devices))


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


# --------------------------------------------------------------------------- webhook


def test_webhook_delivery_is_counted_once_with_a_stable_idempotency_key(push_app, hook):
    [delivery] = raise_alarm(push_app, "phone-1")
    hook.mode = "error"
    assert attempt(push_app, WebhookSender(hook.url, timeout=1), delivery) is not None
    assert row(push_app, delivery)[:2] == ("pending", 1) and row(push_app, delivery)[2] == "HTTP 503"
    time.sleep(0.25)  # past the back-off (at most PUSH_RETRY_MAX_SECONDS = 0.2)
    hook.mode = "ok"
    assert attempt(push_app, WebhookSender(hook.url, timeout=1), delivery) is None
    assert row(push_app, delivery)[:2] == ("sent", 2)
    assert sent_to_devices(push_app) == 1
    keys = [r.headers["idempotency-key"] for r in hook.received]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("alarm-")
    body = hook.received[-1].body
    assert body["push_token"] == "phone-1" and body["alarm"]["alarm_type"] == "HEAT"
    # Settled: another attempt (a duplicated job) sends nothing.
    assert attempt(push_app, WebhookSender(hook.url, timeout=1), delivery) is None
    assert len(hook.received) == 2 and sent_to_devices(push_app) == 1


def test_redirect_is_a_failure_never_followed(push_app, hook):
    [delivery] = raise_alarm(push_app, "phone-1")
    hook.mode = "redirect"
    assert attempt(push_app, WebhookSender(hook.url, timeout=1), delivery) is None
    state, attempts, error = row(push_app, delivery)
    assert (state, attempts) == ("failed", 1) and "302" in error and "redirect" in error
    assert [r.path for r in hook.received] == ["/push"]  # nothing went to the Location
    assert sent_to_devices(push_app) == 0


def test_permanent_rejection_fails_at_once(push_app, hook):
    [delivery] = raise_alarm(push_app, "phone-1")
    hook.mode = "reject"
    assert attempt(push_app, WebhookSender(hook.url, timeout=1), delivery) is None
    assert row(push_app, delivery) == ("failed", 1, "HTTP 400")


def test_gives_up_after_max_attempts_visibly(push_app, hook):
    [delivery] = raise_alarm(push_app, "phone-1")
    hook.mode = "error"
    for _ in range(POLICY.max_attempts):
        time.sleep(0.25)
        attempt(push_app, WebhookSender(hook.url, timeout=1), delivery)
    state, attempts, error = row(push_app, delivery)
    assert (state, attempts) == ("failed", 3) and "PUSH_MAX_ATTEMPTS" in error and "HTTP 503" in error
    page = push_app.test_client().get("/api/v1/alarm-logs", headers={"Authorization": f"Bearer {API_TOKEN}"})
    [alarm] = page.json["items"]
    assert (alarm["sent_to_devices"], alarm["pending_deliveries"], alarm["failed_deliveries"]) == (0, 0, 1)


def test_a_trickling_provider_is_cut_by_the_overall_deadline(push_app, hook):
    """One byte every 0.2 s never trips a read timeout; the call's deadline (1 s) still ends it."""
    [delivery] = raise_alarm(push_app, "phone-1")
    hook.mode = "trickle"
    began = time.monotonic()
    assert attempt(push_app, WebhookSender(hook.url, timeout=1), delivery) is not None
    took = time.monotonic() - began
    state, attempts, error = row(push_app, delivery)
    assert (state, attempts) == ("pending", 1) and "PUSH_TIMEOUT_SECONDS" in error
    print(f"trickling provider cut after {took:.1f} s (deadline 1 s)")


def test_unreachable_provider_is_retried(push_app):
    from tests.helpers import free_port

    [delivery] = raise_alarm(push_app, "phone-1")
    assert attempt(push_app, WebhookSender(f"http://127.0.0.1:{free_port()}/", timeout=1), delivery) is not None
    assert row(push_app, delivery) == ("pending", 1, "ConnectError")


# --------------------------------------------------------------------------- FCM


def service_account(token_uri: str, project: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "test-key",
            "private_key": pem.decode(),
            "client_email": f"push@{project}.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "https://oauth2.invalid/token",  # replaced by FCM_TOKEN_URI
        }
    )


@pytest.fixture
def fcm() -> Iterator[FcmStandIn]:
    server = FcmStandIn()
    yield server
    server.close()


def fcm_sender(fcm: FcmStandIn) -> FcmSender:
    return FcmSender(
        service_account(fcm.token_uri, fcm.project),
        endpoint=fcm.base,
        timeout=2,
        project_id=None,
        token_uri=fcm.token_uri,
    )


def test_fcm_message_is_authenticated_and_shaped(push_app, fcm):
    [delivery] = raise_alarm(push_app, "fcm-phone")
    assert attempt(push_app, fcm_sender(fcm), delivery) is None
    assert row(push_app, delivery)[0] == "sent" and sent_to_devices(push_app) == 1
    assert fcm.problems == []
    [token_request] = [r for r in fcm.received if r.path == "/token"]
    assert "assertion=" in token_request.body["raw"]
    [send] = fcm.sends()
    assert send.headers["authorization"] == f"Bearer {fcm.access_token}"
    message = send.body["message"]
    with push_app.app_context():
        alarm = db.session.scalars(select(MarketAlarmLog)).one()
    assert message["token"] == "fcm-phone"
    assert message["notification"] == {"title": alarm.title, "body": alarm.message}
    assert "폭염" in alarm.title or "폭염" in alarm.message  # the Korean heat-wave text, as stored
    assert message["data"]["alarm_id"] == str(alarm.id) and message["data"]["alarm_type"] == "HEAT"
    key = message["data"]["idempotency_key"]
    assert message["android"]["notification"]["tag"] == key and message["apns"]["headers"]["apns-collapse-id"] == key


def test_fcm_unregistered_removes_the_device(push_app, fcm):
    gone, kept = raise_alarm(push_app, "uninstalled", "still-here")
    fcm.unregistered.add("uninstalled")
    assert attempt(push_app, fcm_sender(fcm), gone) is None
    assert attempt(push_app, fcm_sender(fcm), kept) is None
    state, attempts, error = row(push_app, gone)
    assert (state, attempts) == ("failed", 1) and "UNREGISTERED" in error
    with push_app.app_context():
        assert list(db.session.scalars(select(Device.push_token))) == ["still-here"]
        assert db.session.get(PushDelivery, gone).device_id is None
    assert sent_to_devices(push_app) == 1


def test_fcm_429_waits_at_least_retry_after(push_app, fcm):
    [delivery] = raise_alarm(push_app, "busy-phone")
    fcm.throttled.add("busy-phone")
    fcm.throttle_seconds = 1
    sender = fcm_sender(fcm)
    delay = attempt(push_app, sender, delivery)
    assert delay is not None and delay >= 1.0  # Retry-After beats the 0.2 s back-off
    assert row(push_app, delivery) == ("pending", 1, "HTTP 429")
    assert attempt(push_app, sender, delivery) == pytest.approx(delay, abs=0.5)  # not yet due: leased/backing off
    time.sleep(delay + 0.1)
    assert attempt(push_app, sender, delivery) is None
    assert row(push_app, delivery)[0] == "sent"
    assert [r.status for r in fcm.sends()] == [429, 200]


def test_fcm_refuses_a_wrong_bearer_token(push_app, fcm):
    [delivery] = raise_alarm(push_app, "fcm-phone")
    fcm.access_token = "another-token"  # the stand-in issues this one, but only after the sender cached its own
    sender = fcm_sender(fcm)
    sender.credentials.token = "stale-token"
    sender.credentials.expiry = None  # google-auth treats a token without expiry as valid
    assert attempt(push_app, sender, delivery) is not None
    assert row(push_app, delivery) == ("pending", 1, "HTTP 401")
    time.sleep(0.25)
    assert attempt(push_app, sender, delivery) is None  # the 401 dropped the token: a fresh one is fetched
    assert [r.status for r in fcm.sends()] == [401, 200]


# --------------------------------------------------------------------------- a hostile provider (issue 22)

SECRET_URL_PARTS = ("pa55word", "s3cr3t-token")


def secret_url(hook: WebhookServer) -> str:
    """The stand-in's URL with credentials and a token in it, as a real webhook URL may carry them."""
    return hook.url.replace("http://", "http://push-user:pa55word@") + "?token=s3cr3t-token&team=a"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def test_an_endless_200_body_is_read_a_few_kb_deep_and_the_delivery_is_settled(sqlite_url):
    """The issue's webhook: 200 and a chunked body that never ends. The worker stays small, nothing leaks to its log."""
    assert flask(sqlite_url, "db", "upgrade").returncode == 0
    app = make_app(sqlite_url, API_TOKEN=API_TOKEN)
    client = app.test_client()
    market = create_market(client)["id"]
    subscribe(client, register_device(client, "endless-phone"), "endless-phone", market, "HEAT")
    assert client.post("/api/v1/forecasts", json=heat(market), headers=AUTH).status_code == 200
    hook = WebhookServer("endless")
    worker = WorkerProcess(sqlite_url, PUSH_WEBHOOK_URL=secret_url(hook), PUSH_TIMEOUT_SECONDS="10", LOG_LEVEL="DEBUG")
    try:
        wait_until(lambda: scalar(sqlite_url, "SELECT sent_to_devices FROM market_alarm_log") == 1, 60, "settled")
        peak = peak_rss_mb(worker.process.pid)
    finally:
        code = worker.stop()
        hook.close()
    print(f"\nendless 200 body: worker peak RSS {peak:.0f} MB")
    assert peak < 200
    assert scalar(sqlite_url, "SELECT state || ' ' || attempts FROM push_delivery") == "sent 1"
    assert code == 0 and "Traceback" not in worker.output
    for secret in SECRET_URL_PARTS:
        assert secret not in worker.output
    port = hook.url.split(":")[2].split("/")[0]
    assert f"webhook http://***@127.0.0.1:{port}/push?token=***&team=***" in worker.output


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=when.tzinfo is UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("99999999999999999999", MAX_RETRY_AFTER_SECONDS),  # capped
        ("Fri, 31 Dec 2027 23:59:59 -0000", MAX_RETRY_AFTER_SECONDS),  # the stdlib's naive datetime: UTC
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: now
        ("²", None),  # isdigit() says yes, float() says no
        ("١٢", None),  # Arabic-Indic digits
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_values(value, expected):
    assert retry_after_seconds(value) == expected


@pytest.mark.parametrize("zone", [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5))])
def test_retry_after_http_dates_in_any_zone(zone):
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=90)
    seconds = retry_after_seconds(http_date(when.astimezone(zone)))
    assert seconds is not None and 85 <= seconds <= 90


def test_a_retry_after_date_keeps_the_delivery_pending_until_then(push_app, hook):
    [delivery] = raise_alarm(push_app, "phone-1")
    hook.mode = "error"
    hook.retry_after = http_date((datetime.now(UTC) + timedelta(seconds=60)).astimezone(timezone(timedelta(hours=9))))
    delay = attempt(push_app, WebhookSender(hook.url, timeout=1), delivery)
    assert delay is not None and 30 <= delay <= 60  # the date (KST), not the 0.2 s back-off
    assert row(push_app, delivery) == ("pending", 1, "HTTP 503")


def test_no_webhook_secret_in_any_log_line(push_app, hook, caplog):
    """Failed, refused and unreachable calls at DEBUG, from every logger: the URL's secrets appear in none."""
    caplog.set_level(logging.DEBUG)
    *deliveries, unreachable = raise_alarm(push_app, "phone-1", "phone-2", "phone-3", "phone-4")
    sender = WebhookSender(secret_url(hook), timeout=1)
    for mode, delivery in zip(("error", "reject", "ok"), deliveries, strict=True):
        hook.mode = mode
        attempt(push_app, sender, delivery)
    gone = WebhookServer()
    gone.close()  # its port now answers nobody: a connection error, with the secret URL
    assert attempt(push_app, WebhookSender(secret_url(gone), timeout=1), unreachable) is not None
    assert row(push_app, unreachable) == ("pending", 1, "ConnectError")
    assert {r.headers.get("authorization", "")[:6] for r in hook.received} == {"Basic "}  # the credentials were used
    assert caplog.records
    for secret in SECRET_URL_PARTS:
        assert secret not in caplog.text


def test_url_masking_and_quiet_http_client_loggers():
    assert (
        mask_url("https://u:p@hooks.example:8443/a/b?token=t&x=&y=1#frag")
        == "https://***@hooks.example:8443/a/b?token=***&x=***&y=***"
    )
    assert mask_url("https://fcm.googleapis.com") == "https://fcm.googleapis.com"
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    quiet_http_client_logs()
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING
