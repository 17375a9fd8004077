"""Hostile request bodies and parameters: always a 4xx JSON answer naming the problem, never a write.

Every case counts the rows of every table before and after. Free-text fields
(market name, region, address, push token) are data: a SQL fragment or a path
in them is stored verbatim through bound parameters, so for those the test
proves that exactly the one intended row was written, the text reads back
unchanged and no other table moved; every other string field (enums, times,
cursors, ids) answers 4xx with nothing written.
"""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import text

from models import db
from tests.api_helpers import DAY, create_market, register_device
from tests.conftest import AUTH, DATA_TABLES

JSON = {**AUTH, "Content-Type": "application/json"}
SQL = "x'); DROP TABLE market; --"
HOSTILE_STRINGS = [
    SQL,
    "1 OR 1=1",
    "' UNION SELECT version() --",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "\x00",
]


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {table: db.session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in DATA_TABLES}


@pytest.fixture
def world(api_app, client):
    """One market and one device, so ids in the hostile requests exist."""
    market = create_market(client)
    device = register_device(client, "hostile-device")
    return {"market": market["id"], "device": device["id"]}


def write_requests(world) -> dict[str, tuple[str, str, dict]]:
    """Every write endpoint: method, URL, extra headers."""
    return {
        "create market": ("POST", "/api/v1/markets", JSON),
        "update market": ("PATCH", f"/api/v1/markets/{world['market']}", JSON),
        "register device": ("POST", "/api/v1/devices", {"Content-Type": "application/json"}),
        "subscriptions": (
            "PUT",
            f"/api/v1/devices/{world['device']}/subscriptions",
            {"Content-Type": "application/json", "X-Push-Token": "hostile-device"},
        ),
        "ingest": ("POST", "/api/v1/forecasts", JSON),
    }


def nested(depth: int) -> str:
    return '{"forecasts": ' + "[" * depth + "]" * depth + "}"


HOSTILE_BODIES = {
    "deeply nested arrays": lambda: nested(100_000).encode(),
    "deeply nested objects": lambda: ('{"a": ' * 50_000 + "1" + "}" * 50_000).encode(),
    "invalid UTF-8": lambda: b'{"name": "\xff\xfe\xfd", "region": "\xc3\x28"}',
    "lone surrogate escape": lambda: b'{"name": "\\ud800", "region": "x", "latitude": 37.5, "longitude": 127}',
    "huge integer (5,000 digits)": lambda: b'{"market_id": 1' + b"0" * 5000 + b"}",
    "NaN": lambda: b'{"latitude": NaN, "longitude": 127, "name": "n", "region": "r"}',
    "Infinity": lambda: b'{"latitude": 37.5, "longitude": -Infinity, "name": "n", "region": "r"}',
    "1e400 (overflows to inf)": lambda: b'{"latitude": 1e400, "longitude": 127, "name": "n", "region": "r"}',
    "not JSON": lambda: b"DROP TABLE market;",
    "JSON array instead of object": lambda: b"[1, 2, 3]",
    "JSON string": lambda: b'"../../etc/passwd"',
    "unknown lone-surrogate key": lambda: b'{"\\udc00": 1}',
}


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_bodies_get_4xx_and_write_nothing(api_app, client, world, body):
    before = counts(api_app)
    for name, (method, url, headers) in write_requests(world).items():
        response = client.open(url, method=method, data=HOSTILE_BODIES[body](), headers=headers)
        assert 400 <= response.status_code < 500, (name, body, response.status_code, response.get_data()[:300])
        assert response.is_json and {"error", "message", "status"} <= set(response.json), (name, body)
    assert counts(api_app) == before
    print(f"\n{body}: {len(write_requests(world))} write endpoints answered 4xx, rows unchanged {before}")


def test_oversized_body_is_413_on_every_write_endpoint(api_app, client, world):
    limit = api_app.config["MAX_CONTENT_LENGTH"]
    body = b'{"name": "' + b"x" * limit + b'"}'
    before = counts(api_app)
    for name, (method, url, headers) in write_requests(world).items():
        response = client.open(url, method=method, data=body, headers=headers)
        assert response.status_code == 413, (name, response.status_code)
        assert response.json["error"] == "request_entity_too_large"
    assert counts(api_app) == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("market_id", 10**30),
        ("market_id", -(10**30)),
        ("market_id", 2**31),
        ("precipitation_probability", 10**20),
        ("sky_code", 2**63),
        ("temperature", 1e308),
        ("temperature", -1e308),
        ("market_id", True),
        ("market_id", "1"),
        ("market_id", 1.5),
    ],
)
def test_huge_and_mistyped_numbers_in_a_forecast_are_422(api_app, client, world, field, value):
    row = {"market_id": world["market"], "forecast_time": f"{DAY}T12:00:00+09:00", field: value}
    before = counts(api_app)
    response = client.post("/api/v1/forecasts", json={"forecasts": [row]}, headers=AUTH)
    assert response.status_code == 422, response.json
    assert any(field in key for key in response.json["fields"]), response.json
    assert counts(api_app) == before


@pytest.mark.parametrize("hostile", HOSTILE_STRINGS)
def test_hostile_strings_in_structured_fields_are_422(api_app, client, world, hostile):
    """Enums, times and ids: every string field that is not free text."""
    market, device = world["market"], world["device"]
    hour = {"market_id": market, "forecast_time": f"{DAY}T12:00:00+09:00"}
    cases = [
        ("POST", "/api/v1/devices", {"push_token": "t-hostile", "platform": hostile}, {}),
        (
            "PUT",
            f"/api/v1/devices/{device}/subscriptions",
            {"subscriptions": [{"market_id": market, "alarm_types": [hostile]}]},
            {"X-Push-Token": "hostile-device"},
        ),
        (
            "PUT",
            f"/api/v1/devices/{device}/subscriptions",
            {"subscriptions": [{"market_id": hostile, "alarm_types": ["HEAT"]}]},
            {"X-Push-Token": "hostile-device"},
        ),
        ("POST", "/api/v1/forecasts", {"forecasts": [{**hour, "forecast_time": hostile}]}, AUTH),
        ("POST", "/api/v1/forecasts", {"forecasts": [{**hour, "market_id": hostile}]}, AUTH),
        ("POST", "/api/v1/forecasts", {"forecasts": [{**hour, "temperature": hostile}]}, AUTH),
        ("POST", "/api/v1/markets", {"name": "n", "region": "r", "latitude": hostile, "longitude": 127.0}, AUTH),
        ("PATCH", f"/api/v1/markets/{market}", {"longitude": hostile}, AUTH),
    ]
    before = counts(api_app)
    for method, url, body, headers in cases:
        response = client.open(url, method=method, json=body, headers=headers)
        assert response.status_code == 422, (method, url, body, response.json)
    assert counts(api_app) == before


@pytest.mark.parametrize("hostile", HOSTILE_STRINGS)
def test_hostile_strings_in_query_and_path_parameters(api_app, client, world, hostile):
    market = world["market"]
    before = counts(api_app)
    for url, params, headers in [
        ("/api/v1/markets", {"cursor": hostile}, {}),
        ("/api/v1/markets", {"limit": hostile}, {}),
        ("/api/v1/forecasts", {"market_id": hostile}, {}),
        ("/api/v1/forecasts", {"market_id": market, "start": hostile}, {}),
        ("/api/v1/forecasts", {"market_id": market, "cursor": hostile}, {}),
        ("/api/v1/alarm-logs", {"alarm_type": hostile}, AUTH),
        ("/api/v1/alarm-logs", {"market_id": market, "end": hostile}, AUTH),
    ]:
        response = client.get(url, query_string=params, headers=headers)
        assert response.status_code == 422, (url, params, response.json)
    # A free-text filter is just a value to compare with: no match, no error.
    listed = client.get("/api/v1/markets", query_string={"region": hostile})
    assert listed.status_code == (422 if "\x00" in hostile else 200), listed.json
    if listed.status_code == 200:
        assert listed.json["items"] == []
    for path in (f"/api/v1/markets/{hostile}", f"/api/v1/devices/{hostile}/subscriptions"):
        assert 400 <= client.get(path).status_code < 500
    assert counts(api_app) == before


@pytest.mark.parametrize("hostile", [s for s in HOSTILE_STRINGS if "\x00" not in s])
@pytest.mark.parametrize("field", ["name", "region", "address"])
def test_hostile_text_in_free_text_fields_is_stored_verbatim_and_nothing_else(api_app, client, field, hostile):
    body = {"name": "안전 시장", "region": "서울", "latitude": 37.5665, "longitude": 126.9780, field: hostile}
    before = counts(api_app)
    response = client.post("/api/v1/markets", json=body, headers=AUTH)
    assert response.status_code == 201, response.json
    assert client.get(f"/api/v1/markets/{response.json['id']}").json[field] == hostile
    assert counts(api_app) == {**before, "market": before["market"] + 1}


@pytest.mark.parametrize("hostile", [s for s in HOSTILE_STRINGS if "\x00" not in s])
def test_hostile_push_token_is_stored_verbatim_and_nothing_else(api_app, client, hostile):
    before = counts(api_app)
    response = client.post("/api/v1/devices", json={"push_token": hostile, "platform": "web"})
    assert response.status_code == 201, response.json
    assert counts(api_app) == {**before, "device": before["device"] + 1}


def test_nul_in_free_text_is_422_and_nothing_written(api_app, client):
    before = counts(api_app)
    for field in ("name", "region", "address"):
        body = {"name": "n", "region": "r", "latitude": 37.5665, "longitude": 126.978, field: "a\x00b"}
        assert client.post("/api/v1/markets", json=body, headers=AUTH).status_code == 422
    assert client.post("/api/v1/devices", json={"push_token": "a\x00", "platform": "ios"}).status_code == 422
    assert counts(api_app) == before


def test_a_bad_row_anywhere_in_a_batch_writes_nothing(api_app, client, world):
    rows = [
        {"market_id": world["market"], "forecast_time": f"{DAY}T{h:02d}:00:00+09:00", "temperature": 20.0}
        for h in range(24)
    ]
    rows[17]["temperature"] = float("nan")
    before = counts(api_app)
    response = client.post(
        "/api/v1/forecasts",
        data=json.dumps({"forecasts": rows}),  # json.dumps writes NaN, as a hostile client would
        headers=JSON,
    )
    assert response.status_code == 422 and "forecasts.17.temperature" in response.json["fields"]
    assert counts(api_app) == before


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+01:00", "1900-01-01T00:00:00+09:00", "9999-12-31T23:59:59-01:00"]
)
def test_forecast_time_far_out_is_422_naming_the_field_and_raises_no_alarm(api_app, client, world, moment):
    row = {"market_id": world["market"], "forecast_time": moment, "temperature": 35.0}
    before = counts(api_app)
    response = client.post("/api/v1/forecasts", json={"forecasts": [row]}, headers=AUTH)
    assert response.status_code == 422, response.json
    assert "forecasts.0.forecast_time" in response.json["fields"], response.json
    assert counts(api_app) == before


@pytest.mark.parametrize(
    "key", [["0001-01-01T00:00:00+01:00"], ["9999-12-31T23:59:59-01:00", 1], ["2026-08-01T00:00:00+00:00", 1]]
)
def test_unsigned_cursors_are_422_even_with_a_plausible_key(api_app, client, world, key):
    """The old cursor format (base64 of the JSON key) is exactly what a forger writes."""
    token = base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")
    for url, params in [
        ("/api/v1/forecasts", {"market_id": world["market"], "cursor": token}),
        ("/api/v1/alarm-logs", {"market_id": world["market"], "cursor": token}),
        ("/api/v1/markets", {"cursor": token}),
    ]:
        response = client.get(url, query_string=params, headers=AUTH)
        assert response.status_code == 422 and "cursor" in response.json["fields"], (url, response.json)


def test_a_list_over_its_bound_is_422_and_errors_stop_after_a_few(api_app, client, world):
    headers = {"X-Push-Token": "hostile-device"}
    url = f"/api/v1/devices/{world['device']}/subscriptions"
    six = client.put(
        url, json={"subscriptions": [{"market_id": world["market"], "alarm_types": ["HEAT"] * 6}]}, headers=headers
    )
    assert six.status_code == 422 and "subscriptions.0.alarm_types" in six.json["fields"], six.json
    bad = client.put(url, json={"subscriptions": [{"market_id": 0, "alarm_types": ["HEAT"]}] * 1000}, headers=headers)
    assert bad.status_code == 422
    assert sorted(bad.json["fields"]) == [f"subscriptions.{i}.market_id" for i in range(5)], bad.json


def test_unknown_query_parameters_are_422_not_silently_ignored(api_app, client, world):
    """A typo in a filter must not quietly widen the answer (every market's alarms)."""
    for url, params in [
        ("/api/v1/alarm-logs", {"markt_id": world["market"]}),
        ("/api/v1/forecasts", {"market_id": world["market"], "strat": "2026-08-01T00:00:00Z"}),
        ("/api/v1/markets", {"regoin": "서울"}),
    ]:
        response = client.get(url, query_string=params, headers=AUTH)
        typo = next(iter(set(params) - {"market_id"}))
        assert response.status_code == 422 and typo in response.json["fields"], (url, response.json)
