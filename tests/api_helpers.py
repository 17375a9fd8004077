"""Small builders for the API tests."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import requests

from tests.conftest import AUTH
from weather.times import KST

# Tomorrow in Korea: inside the forecast window (FORECAST_MAX_PAST_DAYS/FUTURE_DAYS) whenever the tests run.
DAY = (datetime.now(KST) + timedelta(days=1)).date().isoformat()
NEXT_DAY = (datetime.now(KST) + timedelta(days=2)).date().isoformat()

_names = itertools.count(1)

# 광장시장 in Seoul (grid cell 60, 127): the market of the tests that talk to a running server.
GWANGJANG: dict[str, Any] = {"name": "광장시장", "region": "서울", "latitude": 37.57, "longitude": 126.9996}


def create_market(client, **fields: Any) -> dict[str, Any]:
    """Create a market (in Seoul unless told otherwise) and return it."""
    body = {"name": f"시장 {next(_names)}", "region": "서울", "latitude": 37.5665, "longitude": 126.9780, **fields}
    response = client.post("/api/v1/markets", json=body, headers=AUTH)
    assert response.status_code == 201, response.json
    return response.json


def post_market(base: str, name: str = "광장시장", headers: dict[str, str] = AUTH) -> int:
    """Create a market through a running server (``base``: its root URL) and return its id."""
    response = requests.post(f"{base}/api/v1/markets", json={**GWANGJANG, "name": name}, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def register_device(client, push_token: str = "device-token-1", platform: str = "android") -> dict[str, Any]:
    """Register a device and return it."""
    response = client.post("/api/v1/devices", json={"push_token": push_token, "platform": platform})
    assert response.status_code in (200, 201), response.json
    return response.json


def subscribe(client, device: dict, push_token: str, market_id: int, *alarm_types: str) -> dict[str, Any]:
    """Replace ``device``'s subscriptions with one market's ``alarm_types``."""
    response = client.put(
        f"/api/v1/devices/{device['id']}/subscriptions",
        json={"subscriptions": [{"market_id": market_id, "alarm_types": list(alarm_types)}]},
        headers={"X-Push-Token": push_token},
    )
    assert response.status_code == 200, response.json
    return response.json


def hour(market_id: int, when: str, **measures: Any) -> dict[str, Any]:
    """One forecast row."""
    return {"market_id": market_id, "forecast_time": when, **measures}


def ingest(client, *rows: dict[str, Any], headers: dict[str, str] | None = None):
    """POST a forecast batch."""
    return client.post(
        "/api/v1/forecasts", json={"forecasts": list(rows)}, headers=AUTH if headers is None else headers
    )
