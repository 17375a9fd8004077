"""The webhook sender against a real local HTTP server; the alarm log survives every failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api_helpers import create_market, hour, ingest, register_device, subscribe
from tests.conftest import AUTH
from tests.webhook_server import WebhookServer
from weather.push import Delivery, WebhookSender


@pytest.fixture
def hook() -> Iterator[WebhookServer]:
    """A local webhook whose answer the test chooses: 'ok', 'error' (503), 'reject' (400) or 'slow'."""
    server = WebhookServer()
    yield server
    server.close()


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
