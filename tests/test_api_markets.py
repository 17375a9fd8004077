"""/api/v1/markets on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import unicodedata

import pytest

from tests.api_helpers import create_market
from tests.conftest import AUTH

SEOUL = {"name": "광장시장", "region": "서울", "latitude": 37.5665, "longitude": 126.9780}


def test_create_answers_201_with_the_full_market(client):
    response = client.post("/api/v1/markets", json={**SEOUL, "address": "종로구 창경궁로 88"}, headers=AUTH)
    assert response.status_code == 201
    market = response.json
    assert market["id"] > 0 and (market["grid_nx"], market["grid_ny"]) == (60, 127)
    assert market["address"] == "종로구 창경궁로 88" and market["name"] == "광장시장"
    assert market["created_at"].endswith("+00:00")
    assert client.get(f"/api/v1/markets/{market['id']}").json == market


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "Basic dGVzdA=="}, 401)],
)
def test_create_needs_the_token(client, headers, status):
    response = client.post("/api/v1/markets", json=SEOUL, headers=headers)
    assert response.status_code == status and response.json["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/markets").json["items"] == []


def test_writes_refused_when_no_token_is_configured(api_app_factory):
    client = api_app_factory(API_TOKEN=None).test_client()
    response = client.post("/api/v1/markets", json=SEOUL, headers=AUTH)
    assert response.status_code == 503 and response.json["error"] == "writes_disabled"


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({k: v for k, v in SEOUL.items() if k != "name"}, "name", "Missing data for required field."),
        ({**SEOUL, "name": ""}, "name", "Length must be between 1 and 100."),
        ({**SEOUL, "name": "x" * 101}, "name", "Length must be between 1 and 100."),
        ({**SEOUL, "name": "a\x00b"}, "name", "Must not contain control characters (found U+0000)."),
        ({**SEOUL, "name": "   "}, "name", "Length must be between 1 and 100."),
        ({**SEOUL, "region": 5}, "region", "Not a valid string."),
        ({**SEOUL, "latitude": "north"}, "latitude", "Not a valid number."),
        ({**SEOUL, "latitude": 95}, "latitude", "Must be greater than -90 and less than or equal to 90."),
        ({**SEOUL, "longitude": None}, "longitude", "Field may not be null."),
        ({**SEOUL, "colour": "red"}, "colour", "Unknown field."),
    ],
)
def test_create_validation_names_the_field(client, body, field, problem):
    response = client.post("/api/v1/markets", json=body, headers=AUTH)
    assert response.status_code == 422, response.json
    assert response.json["fields"][field] == [problem]
    assert field in response.json["message"]


def test_look_alike_names_are_one_market(client):
    """NFD (as macOS types it) and NFC spellings, and surrounding spaces, name the same market: a 409."""
    first = client.post("/api/v1/markets", json=SEOUL, headers=AUTH)
    assert first.status_code == 201
    for spelling in (unicodedata.normalize("NFD", SEOUL["name"]), f" {SEOUL['name']}\u3000", f"{SEOUL['name']} "):
        assert spelling != SEOUL["name"]
        response = client.post("/api/v1/markets", json={**SEOUL, "name": spelling}, headers=AUTH)
        assert response.status_code == 409, (spelling, response.json)
    # The filter is normalised the same way: the decomposed region finds the market.
    listed = client.get("/api/v1/markets", query_string={"region": unicodedata.normalize("NFD", SEOUL["region"])})
    assert [market["name"] for market in listed.json["items"]] == [SEOUL["name"]]
    assert client.get("/api/v1/markets").json["items"][0]["name"] == SEOUL["name"]


@pytest.mark.parametrize(
    ("field", "value", "code_point"),
    [
        ("name", "광장\u200b시장", "U+200B"),  # zero-width space (Cf)
        ("name", "\u202e장시장광", "U+202E"),  # right-to-left override (Cf)
        ("region", "서\u200d울", "U+200D"),  # zero-width joiner (Cf)
        ("address", "종로구\x1b[2J", "U+001B"),  # escape (Cc)
        ("name", "광장\n시장", "U+000A"),  # newline inside (Cc); surrounding ones are stripped
    ],
)
def test_control_and_format_characters_are_refused(client, field, value, code_point):
    market = client.post("/api/v1/markets", json=SEOUL, headers=AUTH).json
    for method, path, body in (
        ("POST", "/api/v1/markets", {**SEOUL, "name": "다른시장", field: value}),
        ("PATCH", f"/api/v1/markets/{market['id']}", {field: value}),
    ):
        response = client.open(path, method=method, json=body, headers=AUTH)
        assert response.status_code == 422, (method, response.json)
        (problem,) = response.json["fields"][field]
        assert problem.startswith("Must not contain") and code_point in problem
    assert client.get("/api/v1/markets").json["items"] == [market]


def test_position_outside_korea_is_422(client):
    response = client.post("/api/v1/markets", json={**SEOUL, "latitude": 48.85, "longitude": 2.35}, headers=AUTH)
    assert response.status_code == 422 and "latitude" in response.json["fields"]
    response = client.post("/api/v1/markets", json={**SEOUL, "latitude": -89.99, "longitude": 0}, headers=AUTH)
    assert response.status_code == 422


def test_malformed_json_is_400(client):
    response = client.post("/api/v1/markets", data='{"name": ', headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["message"] == "The request body is not valid JSON."


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json"]
)
def test_a_body_that_is_not_labelled_json_is_415(client, content_type):
    body = json.dumps(SEOUL)
    for method, path in (("POST", "/api/v1/markets"), ("POST", "/api/v1/devices")):
        response = client.open(path, method=method, data=body, headers={**AUTH, "Content-Type": content_type})
        assert response.status_code == 415, (path, response.json)
        assert response.json["error"] == "unsupported_media_type" and response.json["status"] == 415
        assert "application/json" in response.json["message"]
    assert client.get("/api/v1/markets").json["items"] == []
    # No body and no label: nothing was sent in the wrong shape, so the schema names what is missing.
    empty = client.post("/api/v1/devices")
    assert empty.status_code == 422 and set(empty.json["fields"]) == {"push_token", "platform"}


def test_body_that_is_not_an_object_is_422(client):
    response = client.post("/api/v1/markets", json=[SEOUL], headers=AUTH)
    assert response.status_code == 422 and response.json["fields"]["_schema"] == ["Invalid input type."]


def test_too_large_body_is_413(api_app_factory):
    client = api_app_factory(MAX_CONTENT_LENGTH=1024).test_client()
    response = client.post("/api/v1/markets", json={**SEOUL, "address": "x" * 2000}, headers=AUTH)
    assert response.status_code == 413 and response.json["error"] == "request_entity_too_large"


def test_duplicate_name_in_region_is_409(client):
    create_market(client, **SEOUL)
    response = client.post("/api/v1/markets", json=SEOUL, headers=AUTH)
    assert response.status_code == 409 and response.json["fields"] == {"name": ["taken"]}
    assert client.post("/api/v1/markets", json={**SEOUL, "region": "부산"}, headers=AUTH).status_code == 201


def test_get_unknown_is_404(client):
    for market_id in (12345, 2**40):
        response = client.get(f"/api/v1/markets/{market_id}")
        assert response.status_code == 404 and response.json["error"] == "not_found"


def test_update_changes_fields_and_recomputes_the_grid(client):
    market = create_market(client, **SEOUL)
    response = client.patch(
        f"/api/v1/markets/{market['id']}", json={"latitude": 35.1796, "longitude": 129.0756}, headers=AUTH
    )
    assert response.status_code == 200
    assert (response.json["grid_nx"], response.json["grid_ny"]) == (98, 76)
    assert response.json["name"] == "광장시장"
    response = client.patch(f"/api/v1/markets/{market['id']}", json={"address": None, "name": "새 이름"}, headers=AUTH)
    assert response.json["name"] == "새 이름" and response.json["address"] is None


def test_update_errors(client):
    market = create_market(client, **SEOUL)
    other = create_market(client, name="남대문시장", region="서울")
    url = f"/api/v1/markets/{market['id']}"
    assert client.patch(url, json={"name": "x"}).status_code == 401
    assert client.patch("/api/v1/markets/999999", json={"name": "x"}, headers=AUTH).status_code == 404
    response = client.patch(url, json={"latitude": 10.0}, headers=AUTH)
    assert response.status_code == 422 and "latitude" in response.json["fields"]
    response = client.patch(url, json={"name": None}, headers=AUTH)
    assert response.status_code == 422 and response.json["fields"]["name"] == ["Field may not be null."]
    assert client.patch(url, json={"name": other["name"]}, headers=AUTH).status_code == 409
    assert client.get(url).json == market


def test_list_filters_by_region_and_pages_with_a_cursor(client):
    seoul = [create_market(client, region="서울")["id"] for _ in range(5)]
    create_market(client, region="부산", latitude=35.1796, longitude=129.0756)
    seen: list[int] = []
    cursor = None
    while True:
        query = {"region": "서울", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/markets", query_string=query).json
        seen += [m["id"] for m in page["items"]]
        assert all(m["region"] == "서울" for m in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == seoul
    assert len(client.get("/api/v1/markets").json["items"]) == 6


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-ours"}, "cursor"),
        ({"cursor": "WyJ4Il0"}, "cursor"),
    ],
)
def test_list_validation(client, query, field):
    response = client.get("/api/v1/markets", query_string=query)
    assert response.status_code == 422 and field in response.json["fields"], response.json
