"""Write endpoints need the token (compared in constant time); security headers; CORS off unless configured."""

from __future__ import annotations

import hmac

import pytest

from tests.api_helpers import DAY, create_market
from tests.conftest import AUTH, DATA_TABLES
from tests.test_hostile_input import counts
from weather.config import ConfigError, load_config
from weather.http_headers import SECURITY_HEADERS

OPERATOR_ENDPOINTS = [
    ("POST", "/api/v1/markets", {"name": "n", "region": "r", "latitude": 37.5665, "longitude": 126.978}),
    ("PATCH", "/api/v1/markets/{market}", {"name": "renamed"}),
    ("POST", "/api/v1/forecasts", {"forecasts": [{"market_id": 1, "forecast_time": f"{DAY}T12:00:00+09:00"}]}),
    ("GET", "/api/v1/alarm-logs", None),
]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": AUTH["Authorization"].replace("Bearer", "Basic")}, 401),
        ({"Authorization": AUTH["Authorization"] + "x"}, 401),
        ({"Authorization": AUTH["Authorization"][:-1]}, 401),
    ],
)
def test_every_operator_endpoint_refuses_a_missing_or_wrong_token(api_app, client, headers, status):
    market = create_market(client)["id"]
    before = counts(api_app)
    for method, url, body in OPERATOR_ENDPOINTS:
        response = client.open(url.format(market=market), method=method, json=body, headers=headers)
        assert response.status_code == status, (method, url, response.json)
        assert response.json["error"] == "unauthorized" and response.headers["WWW-Authenticate"].startswith("Bearer")
    assert counts(api_app) == before


def test_unset_token_disables_every_operator_endpoint(api_app_factory, api_app):
    client = api_app_factory(API_TOKEN=None).test_client()
    before = counts(api_app)
    for method, url, body in OPERATOR_ENDPOINTS:
        for headers in ({}, AUTH, {"Authorization": "Bearer "}):
            response = client.open(url.format(market=1), method=method, json=body, headers=headers)
            assert response.status_code == 503 and response.json["error"] == "writes_disabled", (method, url)
    assert counts(api_app) == before
    assert set(DATA_TABLES) == set(before)


def test_the_token_is_compared_in_constant_time(client, monkeypatch):
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert client.get("/api/v1/alarm-logs", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert client.get("/api/v1/alarm-logs", headers=AUTH).status_code == 200
    assert [a for a, _ in compared] == [b"guess", AUTH["Authorization"].split()[1].encode()]


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("GET", "/healthz", {}),
        ("GET", "/api/v1/markets", {}),
        ("GET", "/api/v1/markets/999999", {}),
        ("GET", "/api/v1/openapi.json", {}),
        ("POST", "/api/v1/markets", {}),
        ("POST", "/api/v1/markets", AUTH),
        ("DELETE", "/api/v1/markets", {}),
        ("GET", "/no/such/page", {}),
    ],
)
def test_security_headers_on_every_response(client, method, url, headers):
    response = client.open(url, method=method, headers=headers, json={})
    for header, value in SECURITY_HEADERS.items():
        assert response.headers.get(header) == value, (url, response.status_code, header)
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_is_off_unless_configured(client):
    origin = {"Origin": "https://evil.example"}
    assert "Access-Control-Allow-Origin" not in client.get("/api/v1/markets", headers=origin).headers
    preflight = client.options("/api/v1/markets", headers={**origin, "Access-Control-Request-Method": "POST"}).headers
    assert not [name for name, _ in preflight if name.lower().startswith("access-control-")]


def test_cors_allows_only_the_configured_origins(api_app_factory):
    client = api_app_factory(CORS_ORIGINS=("https://ops.example",)).test_client()
    allowed = client.get("/api/v1/markets", headers={"Origin": "https://ops.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ops.example"
    assert "Origin" in allowed.headers["Vary"]
    preflight = client.options(
        "/api/v1/markets",
        headers={"Origin": "https://ops.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    other = client.get("/api/v1/markets", headers={"Origin": "https://ops.example.evil"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_cors_origins_are_validated():
    assert load_config({"CORS_ORIGINS": "https://a.example, http://b.example:8080"}, "instance")["CORS_ORIGINS"] == (
        "https://a.example",
        "http://b.example:8080",
    )
    for bad in ("*", "a.example", "https://a.example/path", "javascript:alert(1)"):
        with pytest.raises(ConfigError, match="CORS_ORIGINS"):
            load_config({"CORS_ORIGINS": bad}, "instance")
