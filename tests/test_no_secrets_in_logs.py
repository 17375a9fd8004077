"""No password and no API token in any log line, at any level, over a whole entrypoint session."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy.engine import make_url

from tests.api_helpers import DAY, post_market
from tests.helpers import wait_for_http
from tests.test_entrypoint import start, stop

PASSWORD = "pw-Zq8rX2vLk9"  # the test server trusts every login, so any password connects
TOKEN = "tok-7fK2mPq9Rw4x"


def test_debug_logs_of_a_full_session_hold_no_secret(pg_url):
    url = make_url(pg_url).set(password=PASSWORD).render_as_string(hide_password=False)
    process, port = start(url, API_TOKEN=TOKEN, LOG_LEVEL="DEBUG")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    statuses = []
    try:
        wait_for_http(f"{base}/readyz", process)
        market = post_market(base, headers=auth)
        device = requests.post(f"{base}/api/v1/devices", json={"push_token": "p-1", "platform": "ios"}, timeout=10)
        calls: list[tuple[str, str, dict[str, Any] | None, dict[str, str]]] = [
            (
                "PUT",
                f"/api/v1/devices/{device.json()['id']}/subscriptions",
                {"subscriptions": [{"market_id": market, "alarm_types": ["HEAT"]}]},
                {"X-Push-Token": "p-1"},
            ),
            (
                "POST",
                "/api/v1/forecasts",
                {"forecasts": [{"market_id": market, "forecast_time": f"{DAY}T12:00:00+09:00", "temperature": 36}]},
                auth,
            ),
            ("GET", "/api/v1/alarm-logs", None, auth),
            ("GET", "/api/v1/alarm-logs", None, {"Authorization": f"Bearer {TOKEN}-wrong"}),
            ("POST", "/api/v1/markets", {"name": "x"}, {"Authorization": f"Bearer {TOKEN[:-1]}"}),
            ("GET", "/readyz", None, {}),
        ]
        for method, path, body, headers in calls:
            statuses.append(requests.request(method, base + path, json=body, headers=headers, timeout=10).status_code)
    finally:
        code, output = stop(process)
    lines = output.splitlines()
    debug = sum(" DEBUG " in line or "[DEBUG]" in line for line in lines)
    leaks = [line for line in lines if PASSWORD in line or TOKEN[:12] in line]
    print(
        f"\nsession: {len(statuses) + 3} requests {statuses}, {len(lines)} log lines ({debug} DEBUG), "
        f"lines with the password or the token: {len(leaks)}"
    )
    assert code == 0, output
    assert statuses[:3] == [200, 200, 200] and statuses[3:5] == [401, 401], statuses
    assert debug > 0, "LOG_LEVEL=DEBUG produced no debug line: the scan would prove little"
    assert leaks == [], "\n".join(leaks)
