"""The webhook sender against a real local HTTP server; the alarm log survives every failure."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.api_helpers import create_market, hour, ingest, register_device, subscribe
from tests.conftest import AUTH
from weather.push import Delivery, WebhookSender


class Hook:
    """A local webhook whose answer the test chooses: 'ok', 'error', 'reject' or 'slow'."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.received.append(body)
                if hook.mode == "slow":
                    time.sleep(1.0)  # longer than the sender's timeout
                status = {"ok": 200, "error": 503, "reject": 400, "slow": 200}[hook.mode]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/push"


@pytest.fixture
def hook() -> Iterator[Hook]:
    hook = Hook()
    thread = threading.Thread(target=hook.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


DELIVERY = Delivery("tok", "ios", {"id": 1, "alarm_type": "HEAT"})


def test_sender_success(hook):
    assert WebhookSender(hook.url, timeout=2, retries=2).send(DELIVERY) is True
    assert hook.received == [{"push_token": "tok", "platform": "ios", "alarm": {"id": 1, "alarm_type": "HEAT"}}]


def test_sender_retries_server_errors_a_bounded_number_of_times(hook):
    hook.mode = "error"
    assert WebhookSender(hook.url, timeout=2, retries=2, backoff=0).send(DELIVERY) is False
    assert len(hook.received) == 3


def test_sender_does_not_retry_a_rejected_request(hook):
    hook.mode = "reject"
    assert WebhookSender(hook.url, timeout=2, retries=2, backoff=0).send(DELIVERY) is False
    assert len(hook.received) == 1


def test_sender_times_out(hook):
    hook.mode = "slow"
    assert WebhookSender(hook.url, timeout=0.2, retries=1, backoff=0).send(DELIVERY) is False
    assert len(hook.received) == 2


def test_sender_unreachable_url_fails_cleanly():
    from tests.helpers import free_port

    assert WebhookSender(f"http://127.0.0.1:{free_port()}/", timeout=1, retries=1, backoff=0).send(DELIVERY) is False


@pytest.mark.parametrize(("mode", "sent"), [("ok", 1), ("error", 0), ("slow", 0)])
def test_ingest_through_the_webhook(api_app_factory, hook, mode, sent):
    app = api_app_factory(PUSH_WEBHOOK_URL=hook.url, PUSH_TIMEOUT_SECONDS=0.2, PUSH_RETRIES=1)
    client = app.test_client()
    market = create_market(client, name=f"웹훅 시장 {mode}")["id"]
    subscribe(client, register_device(client, f"hook-{mode}"), f"hook-{mode}", market, "HEAT")
    hook.mode = mode
    response = ingest(client, hour(market, "2026-08-01T12:00:00+09:00", temperature=35.0))
    assert response.status_code == 200
    assert [a["sent_to_devices"] for a in response.json["alarms"]] == [sent]
    assert hook.received and hook.received[0]["push_token"] == f"hook-{mode}"
    logs = client.get("/api/v1/alarm-logs", query_string={"market_id": market}, headers=AUTH).json["items"]
    assert [(log["alarm_type"], log["sent_to_devices"]) for log in logs] == [("HEAT", sent)]
