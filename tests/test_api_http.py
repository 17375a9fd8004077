"""The whole story over real HTTP through entrypoint.sh and gunicorn, with a push worker beside it."""

from __future__ import annotations

import requests

from tests.api_helpers import DAY, GWANGJANG
from tests.conftest import API_TOKEN
from tests.helpers import wait_for_http
from tests.push_processes import WorkerProcess, wait_until
from tests.test_entrypoint import start, stop


def test_market_device_subscription_heat_wave_alarm_over_http(pg_url):
    process, port = start(pg_url, API_TOKEN=API_TOKEN)
    base = f"http://127.0.0.1:{port}/api/v1"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    try:
        wait_for_http(f"http://127.0.0.1:{port}/readyz", process)
        market = requests.post(
            f"{base}/markets",
            json=GWANGJANG,
            headers=auth,
            timeout=10,
        )
        assert market.status_code == 201 and market.json()["grid_nx"] == 60, market.text
        market_id = market.json()["id"]

        device = requests.post(f"{base}/devices", json={"push_token": "phone-1", "platform": "ios"}, timeout=10)
        assert device.status_code == 201, device.text
        subscribed = requests.put(
            f"{base}/devices/{device.json()['id']}/subscriptions",
            json={"subscriptions": [{"market_id": market_id, "alarm_types": ["HEAT"]}]},
            headers={"X-Push-Token": "phone-1"},
            timeout=10,
        )
        assert subscribed.status_code == 200, subscribed.text

        forecasts = [
            {"market_id": market_id, "forecast_time": f"{DAY}T{h:02d}:00:00+09:00", "temperature": 30.0 + h / 4}
            for h in range(9, 18)
        ]
        ingested = requests.post(f"{base}/forecasts", json={"forecasts": forecasts}, headers=auth, timeout=30)
        assert ingested.status_code == 200, ingested.text
        assert [a["alarm_type"] for a in ingested.json()["alarms"]] == ["HEAT"]

        assert requests.get(f"{base}/alarm-logs", timeout=10).status_code == 401

        def alarm_log() -> dict:
            logs = requests.get(f"{base}/alarm-logs", params={"market_id": market_id}, headers=auth, timeout=10)
            assert logs.status_code == 200
            [alarm] = logs.json()["items"]
            return alarm

        assert (alarm_log()["alarm_type"], alarm_log()["target_date"]) == ("HEAT", DAY)
        worker = WorkerProcess(pg_url)
        try:
            wait_until(lambda: alarm_log()["sent_to_devices"] == 1, 60, "the alarm pushed to the device")
        finally:
            assert worker.stop() == 0, worker.output
        assert "phone-1" not in worker.output
        assert requests.get(f"{base}/openapi.json", timeout=10).json()["openapi"] == "3.0.3"
    finally:
        code, output = stop(process)
    assert code == 0, output
    assert "Traceback" not in output
    assert "phone-1" not in output and API_TOKEN not in output
