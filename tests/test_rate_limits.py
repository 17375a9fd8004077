"""Rate limits on the anonymous device endpoints (weather/rate_limits.py): per address and per device,
429 with Retry-After in the API's JSON error shape, counted in the database so processes share them."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import flask_migrate
import pytest
import requests

from tests.api_helpers import create_market, register_device
from tests.conftest import make_app
from tests.helpers import free_port, start_flask, wait_for_http

REGISTER = "/api/v1/devices"


@contextlib.contextmanager
def limits(app, **settings: str) -> Iterator[None]:
    """The app's rate limits set to ``settings`` for the duration (they are read per request)."""
    saved = {name: app.config[name] for name in settings}
    app.config.update(settings)
    try:
        yield
    finally:
        app.config.update(saved)


def register(client, token: str, address: str = "203.0.113.7"):
    return client.post(REGISTER, json={"push_token": token, "platform": "ios"}, environ_base={"REMOTE_ADDR": address})


def assert_limited(response) -> None:
    assert response.status_code == 429, response.json
    assert response.json["error"] == "too_many_requests" and response.json["status"] == 429
    assert "Retry-After" in response.json["message"]
    assert 0 < int(response.headers["Retry-After"]) <= 60


def test_registrations_are_limited_per_address(api_app, client):
    with limits(api_app, RATE_LIMIT_REGISTRATIONS="3 per minute"):
        assert [register(client, f"phone-{i}").status_code for i in range(3)] == [201] * 3
        assert_limited(register(client, "phone-3"))
        # Another address has its own count.
        assert register(client, "phone-4", address="198.51.100.9").status_code == 201
        # Behind a trusted proxy (FORWARDED_ALLOW_IPS: 127.0.0.1) the address it forwards is the client's ...
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        proxied = client.post(
            REGISTER,
            json={"push_token": "p5", "platform": "ios"},
            headers=forwarded,
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
        assert_limited(proxied)
        # ... but an untrusted peer cannot choose its key by sending the header.
        spoofed = client.post(
            REGISTER,
            json={"push_token": "p6", "platform": "ios"},
            headers={"X-Forwarded-For": "192.0.2.1"},
            environ_base={"REMOTE_ADDR": "203.0.113.7"},
        )
        assert_limited(spoofed)
    with api_app.app_context():
        from models import Device, db

        assert db.session.query(Device).count() == 4  # the refused ones were never written


def test_device_changes_are_limited_per_device_and_per_address(api_app, client):
    market = create_market(client)["id"]
    devices = [register_device(client, f"token-{i}") for i in range(3)]
    body = {"subscriptions": [{"market_id": market, "alarm_types": ["RAIN"]}]}

    def change(index: int):
        return client.put(
            f"/api/v1/devices/{devices[index]['id']}/subscriptions",
            json=body,
            headers={"X-Push-Token": f"token-{index}"},
            environ_base={"REMOTE_ADDR": "203.0.113.7"},
        )

    with limits(
        api_app,
        RATE_LIMIT_DEVICE_CHANGES_PER_DEVICE="2 per minute",
        RATE_LIMIT_DEVICE_CHANGES_PER_ADDRESS="4 per minute",
    ):
        assert [change(0).status_code, change(0).status_code] == [200, 200]
        assert_limited(change(0))  # this device's third change
        assert change(1).status_code == 200  # another device from the same address still may
        assert change(2).status_code == 200
        assert_limited(change(2))  # the address's fifth change (the per-device limit alone would allow it)
        deleted = client.delete(
            f"/api/v1/devices/{devices[1]['id']}",
            headers={"X-Push-Token": "token-1"},
            environ_base={"REMOTE_ADDR": "203.0.113.7"},
        )
        assert_limited(deleted)  # unregistering draws on the same budget as subscription changes
    with limits(api_app, RATE_LIMIT_DEVICE_CHANGES_PER_DEVICE="1 per minute"):
        # Wrong tokens count against their address only: a stranger cannot use up a device's budget.
        for _ in range(3):
            wrong = client.put(
                f"/api/v1/devices/{devices[2]['id']}/subscriptions",
                json=body,
                headers={"X-Push-Token": "guess"},
                environ_base={"REMOTE_ADDR": "198.51.100.1"},
            )
            assert wrong.status_code == 401
        assert change(2).status_code == 200
        assert_limited(change(2))


def test_a_bad_limit_is_refused_at_start_up(api_app_factory):
    from weather.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="RATE_LIMIT_REGISTRATIONS"):
        load_config({"RATE_LIMIT_REGISTRATIONS": "lots"}, "instance")


def test_two_processes_share_the_count(pg_url):
    """Two app processes on one database (two pods): 2 + 2 registrations use up a limit of 4, then both refuse."""
    app = make_app(pg_url)
    with app.app_context():
        flask_migrate.upgrade()
        from models import db

        db.engine.dispose()
    ports = [free_port(), free_port()]
    processes = [
        start_flask(pg_url, "run", "--port", str(port), RATE_LIMIT_REGISTRATIONS="4 per minute") for port in ports
    ]
    try:
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base, process in zip(bases, processes, strict=True):
            wait_for_http(f"{base}/healthz", process, timeout=60)
        statuses = [
            requests.post(f"{base}{REGISTER}", json={"push_token": f"p-{i}-{base}", "platform": "ios"}, timeout=30)
            for i in range(3)
            for base in bases
        ]
    finally:
        for process in processes:
            process.terminate()
            process.communicate(timeout=30)
    assert [answer.status_code for answer in statuses] == [201, 201, 201, 201, 429, 429]
    assert all(int(answer.headers["Retry-After"]) > 0 for answer in statuses[4:])
    assert statuses[5].json()["error"] == "too_many_requests"


def test_the_database_storage_counts_windows(api_app):
    """limits' storage interface on rate_limit_counter: a live window counts up, an expired one starts again."""
    from weather.rate_limits import DatabaseStorage

    storage = DatabaseStorage()
    with api_app.app_context():
        assert storage.check()
        assert [storage.incr("k", 60), storage.incr("k", 60, amount=2)] == [1, 3]
        assert storage.get("k") == 3 and time.time() < storage.get_expiry("k") <= time.time() + 60
        assert storage.incr("gone", 0) == 1  # a window that has already ended ...
        assert storage.get("gone") == 0 and storage.incr("gone", 60) == 1  # ... counts from one again
        storage.clear("k")
        assert storage.get("k") == 0
        assert storage.reset() == 1  # "gone" was the last counter
