"""/api/v1/forecasts: bulk ingest, the alarms and push deliveries it records, and listing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from models import Forecast, MarketAlarmLog, PushDelivery, db
from tests.api_helpers import DAY, NEXT_DAY, create_market, hour, ingest, register_device, subscribe
from tests.conftest import AUTH
from weather.config import ConfigError, load_config


def alarm_rows(app) -> list[tuple]:
    with app.app_context():
        log = MarketAlarmLog
        query = select(log.market_id, log.alarm_type, log.target_date).order_by(log.id)
        return [tuple(row) for row in db.session.execute(query)]


def delivery_rows(app) -> list[tuple]:
    with app.app_context():
        d = PushDelivery
        query = select(d.alarm_id, d.device_id, d.state, d.idempotency_key).order_by(d.id)
        return [tuple(row) for row in db.session.execute(query)]


def owed(app, alarm_id: int, device_id: int) -> list[tuple]:
    """What an ingest commits with a new alarm: the delivery rows (SQLite) or its fan-out job (PostgreSQL)."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            jobs = db.session.execute(text("SELECT task_name, args FROM procrastinate_jobs ORDER BY id")).all()
            assert [tuple(job) for job in jobs][-1] == ("push.fan_out", {"alarm_id": alarm_id})
            return []
    return [(alarm_id, device_id, "pending", f"alarm-{alarm_id}-device-{device_id}")]


def forecast_count(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(Forecast)).scalar_one()


def test_heat_wave_is_recorded_and_pushed_once(client, api_app):
    market = create_market(client)
    heat_fan = register_device(client, "heat-fan")
    subscribe(client, heat_fan, "heat-fan", market["id"], "HEAT")
    rain_fan = register_device(client, "rain-fan")
    subscribe(client, rain_fan, "rain-fan", market["id"], "RAIN")
    rows = [hour(market["id"], f"{DAY}T{h:02d}:00:00+09:00", temperature=30 + h / 4) for h in range(6, 18)]

    response = ingest(client, *rows)
    assert response.status_code == 200, response.json
    assert response.json["upserted"] == 12
    [alarm] = response.json["alarms"]
    assert alarm["alarm_type"] == "HEAT" and alarm["target_date"] == DAY
    assert market["name"] in alarm["title"] and "34.2" in alarm["message"]
    # Recorded with the alarm, sent later by a push worker: the request never waits for a provider.
    assert alarm["sent_to_devices"] == 0
    expected = owed(api_app, alarm["id"], heat_fan["id"])
    assert delivery_rows(api_app) == expected

    again = ingest(client, *rows)
    assert again.status_code == 200 and again.json["alarms"] == []
    assert len(alarm_rows(api_app)) == 1 and delivery_rows(api_app) == expected
    [logged] = client.get("/api/v1/alarm-logs", headers=AUTH).json["items"]
    pending = len(expected)  # PostgreSQL: the rows appear when a worker runs the fan-out job
    assert (logged["sent_to_devices"], logged["pending_deliveries"], logged["failed_deliveries"]) == (0, pending, 0)


def test_reingest_updates_in_place(client, api_app):
    market = create_market(client)["id"]
    ingest(client, hour(market, f"{DAY}T12:00:00+09:00", temperature=20.0, sky_code=1))
    ingest(client, hour(market, f"{DAY}T12:00:00+09:00", temperature=21.5, wind_speed=2.0))
    [row] = client.get("/api/v1/forecasts", query_string={"market_id": market}).json["items"]
    assert row["temperature"] == 21.5 and row["wind_speed"] == 2.0 and row["sky_code"] is None
    assert row["forecast_time"] == f"{DAY}T03:00:00+00:00"
    assert forecast_count(api_app) == 1


def test_day_is_judged_on_all_its_stored_hours_in_korean_time(client, api_app):
    market = create_market(client)["id"]
    # 16:00 UTC on 1 August is 01:00 on 2 August in Korea.
    assert ingest(client, hour(market, f"{DAY}T16:00:00Z", temperature=31.0)).json["alarms"] == []
    alarms = ingest(client, hour(market, f"{NEXT_DAY}T05:00:00Z", temperature=33.0)).json["alarms"]
    assert [(a["alarm_type"], a["target_date"]) for a in alarms] == [("HEAT", NEXT_DAY)]


@pytest.mark.parametrize(
    ("measures", "alarm_type"),
    [
        ([{"temperature": -12.0}], "COLD"),
        ([{"wind_speed": 14.0}], "WIND"),
        ([{"precipitation_mm": 30.0}], "RAIN"),
        ([{"snowfall_cm": 2.5}, {"snowfall_cm": 2.5}], "SNOW"),
    ],
)
def test_each_rule_at_its_threshold(client, measures, alarm_type):
    market = create_market(client)["id"]
    rows = [hour(market, f"{DAY}T{9 + i:02d}:00:00+09:00", **m) for i, m in enumerate(measures)]
    assert [a["alarm_type"] for a in ingest(client, *rows).json["alarms"]] == [alarm_type]


def test_below_thresholds_raise_nothing(client):
    market = create_market(client)["id"]
    calm = {"temperature": 32.9, "wind_speed": 13.9, "precipitation_mm": 29.9, "snowfall_cm": 4.9}
    assert ingest(client, hour(market, f"{DAY}T09:00:00+09:00", **calm)).json["alarms"] == []


def test_thresholds_are_configurable(api_app_factory):
    client = api_app_factory(ALARM_HEAT_MAX_TEMP_C=30.0).test_client()
    market = create_market(client, name="설정 시장")["id"]
    alarms = ingest(client, hour(market, f"{DAY}T12:00:00+09:00", temperature=30.5)).json["alarms"]
    assert [a["alarm_type"] for a in alarms] == ["HEAT"]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ALARM_HEAT_MAX_TEMP_C": "hot"}, "ALARM_HEAT_MAX_TEMP_C"),
        ({"ALARM_WIND_SPEED_MS": "-1"}, "ALARM_WIND_SPEED_MS"),
        ({"ALARM_SNOW_DAILY_CM": "nan"}, "ALARM_SNOW_DAILY_CM"),
        ({"PUSH_WEBHOOK_URL": "ftp://example"}, "PUSH_WEBHOOK_URL"),
        ({"PUSH_TIMEOUT_SECONDS": "0"}, "PUSH_TIMEOUT_SECONDS"),
        ({"PUSH_MAX_ATTEMPTS": "0"}, "PUSH_MAX_ATTEMPTS"),
        ({"PUSH_PROVIDER": "pigeon"}, "PUSH_PROVIDER"),
        ({"FCM_CREDENTIALS": "{not json"}, "FCM_CREDENTIALS is not a service account key"),
        ({"APP_ENV": "production"}, "APP_ENV=production refuses the recording push sender"),
    ],
)
def test_invalid_configuration_names_the_variable(env, variable, tmp_path):
    with pytest.raises(ConfigError, match=variable):
        load_config(env, str(tmp_path))


def test_ten_thousand_rows_in_one_request(client, api_app):
    markets = [create_market(client)["id"] for _ in range(4)]
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=100)
    rows = [
        hour(m, (start + timedelta(hours=h)).isoformat(), temperature=25.0, wind_speed=3.0, precipitation_mm=0.0)
        for m in markets
        for h in range(2500)
    ]
    response = ingest(client, *rows)
    assert response.status_code == 200, response.json
    assert response.json == {"upserted": 10_000, "alarms": []}
    assert forecast_count(api_app) == 10_000


def test_ingest_needs_the_token(client, api_app_factory):
    market = create_market(client)["id"]
    row = hour(market, f"{DAY}T12:00:00+09:00", temperature=35.0)
    assert ingest(client, row, headers={}).status_code == 401
    assert ingest(client, row, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert ingest(api_app_factory(API_TOKEN=None).test_client(), row).status_code == 503


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "forecasts"),
        ({"forecasts": []}, "forecasts"),
        ({"forecasts": {"market_id": 1}}, "forecasts"),
        ({"forecasts": [{"forecast_time": f"{DAY}T12:00:00+09:00"}]}, "forecasts.0.market_id"),
        ({"forecasts": [{"market_id": "MID", "forecast_time": f"{DAY}T12:00:00+09:00"}]}, "forecasts.0.market_id"),
        ({"forecasts": [{"market_id": "{m}"}]}, "forecasts.0.forecast_time"),
        ({"forecasts": [{"market_id": "{m}", "forecast_time": f"{DAY}T12:00:00"}]}, "forecasts.0.forecast_time"),
        ({"forecasts": [{"market_id": "{m}", "forecast_time": "yesterday"}]}, "forecasts.0.forecast_time"),
        (
            {"forecasts": [{"market_id": "{m}", "forecast_time": f"{DAY}T12:00:00Z", "temperature": 99}]},
            "forecasts.0.temperature",
        ),
        (
            {
                "forecasts": [
                    {"market_id": "{m}", "forecast_time": f"{DAY}T12:00:00Z", "precipitation_probability": 101}
                ]
            },
            "forecasts.0.precipitation_probability",
        ),
        (
            {"forecasts": [{"market_id": "{m}", "forecast_time": f"{DAY}T12:00:00Z", "sky_code": 2.5}]},
            "forecasts.0.sky_code",
        ),
        (
            {"forecasts": [{"market_id": "{m}", "forecast_time": f"{DAY}T12:00:00Z", "humidity": 50}]},
            "forecasts.0.humidity",
        ),
    ],
)
def test_ingest_validation_names_the_field_and_writes_nothing(client, api_app, body, field):
    market = create_market(client)["id"]
    for row in body.get("forecasts", []) if isinstance(body.get("forecasts"), list) else []:
        if row.get("market_id") == "{m}":
            row["market_id"] = market
    good = {"market_id": market, "forecast_time": f"{DAY}T01:00:00Z", "temperature": 40.0}
    if isinstance(body.get("forecasts"), list) and body["forecasts"]:
        body = {"forecasts": [*body["forecasts"], good]}
    response = client.post("/api/v1/forecasts", json=body, headers=AUTH)
    assert response.status_code == 422 and field in response.json["fields"], response.json
    assert forecast_count(api_app) == 0 and alarm_rows(api_app) == []


def test_unknown_market_in_batch_is_422_and_nothing_is_written(client, api_app):
    market = create_market(client)["id"]
    rows = [hour(market, f"{DAY}T12:00:00+09:00", temperature=35.0), hour(987654, f"{DAY}T12:00:00+09:00")]
    response = ingest(client, *rows)
    assert response.status_code == 422
    assert response.json["fields"] == {"forecasts.1.market_id": ["market 987654 does not exist"]}
    assert "987654" in response.json["message"]
    assert forecast_count(api_app) == 0 and alarm_rows(api_app) == []


def test_duplicate_hour_in_batch_is_422(client, api_app):
    market = create_market(client)["id"]
    rows = [hour(market, f"{DAY}T12:00:00+09:00"), hour(market, f"{DAY}T03:00:00Z")]
    response = ingest(client, *rows)
    assert response.status_code == 422 and "forecasts.1" in response.json["fields"]
    assert forecast_count(api_app) == 0


def test_list_by_market_and_time_range_with_cursor(client):
    market = create_market(client)["id"]
    other = create_market(client)["id"]
    ingest(client, *[hour(market, f"{DAY}T{h:02d}:00:00Z", temperature=float(h)) for h in range(10)])
    ingest(client, hour(other, f"{DAY}T05:00:00Z", temperature=1.0))
    query = {"market_id": market, "start": f"{DAY}T11:00:00+09:00", "end": f"{DAY}T08:00:00Z", "limit": 2}
    temperatures: list[float] = []
    while True:
        page = client.get("/api/v1/forecasts", query_string=query).json
        temperatures += [row["temperature"] for row in page["items"]]
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    assert temperatures == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({}, 422, "market_id"),
        ({"market_id": "x"}, 422, "market_id"),
        ({"market_id": "{m}", "start": f"{NEXT_DAY}T00:00:00Z", "end": f"{DAY}T00:00:00Z"}, 422, "end"),
        ({"market_id": "{m}", "start": f"{NEXT_DAY}T00:00:00"}, 422, "start"),
        ({"market_id": "{m}", "cursor": "bogus"}, 422, "cursor"),
        ({"market_id": "{m}", "cursor": "WzFd"}, 422, "cursor"),
        ({"market_id": 31337}, 404, None),
    ],
)
def test_list_errors(client, query, status, field):
    market = create_market(client)["id"]
    query = {k: (market if v == "{m}" else v) for k, v in query.items()}
    response = client.get("/api/v1/forecasts", query_string=query)
    assert response.status_code == status, response.json
    if field:
        assert field in response.json["fields"]


@pytest.mark.parametrize(
    "when",
    [
        "0001-01-01T00:00:00+01:00",  # before the first representable UTC instant
        "9999-12-31T23:59:59-01:00",  # after the last one
        "1900-01-01T12:00:00+09:00",  # representable, but no forecast of ours
        "0001-01-02T00:00:00Z",
        "9999-01-01T00:00:00Z",
        "FAR_FUTURE",
    ],
)
def test_forecast_time_outside_the_window_is_422_and_never_an_alarm(client, api_app, when):
    market = create_market(client)["id"]
    if when == "FAR_FUTURE":  # just past FORECAST_MAX_FUTURE_DAYS (31)
        when = (datetime.now(UTC) + timedelta(days=32)).isoformat()
    response = ingest(client, hour(market, f"{DAY}T12:00:00+09:00"), hour(market, when, temperature=40.0))
    assert response.status_code == 422, response.json
    assert list(response.json["fields"]) == ["forecasts.1.forecast_time"]
    assert forecast_count(api_app) == 0 and alarm_rows(api_app) == []


def test_forecast_window_is_configurable(api_app_factory):
    client = api_app_factory(FORECAST_MAX_PAST_DAYS=1.0, FORECAST_MAX_FUTURE_DAYS=0.5).test_client()
    market = create_market(client, name="창 시장")["id"]
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    response = ingest(client, hour(market, three_days_ago, temperature=20.0))
    assert response.status_code == 422
    assert response.json["fields"] == {
        "forecasts.0.forecast_time": ["Must lie within 1 days before and 0.5 days after now."]
    }
    assert ingest(client, hour(market, datetime.now(UTC).isoformat(), temperature=20.0)).status_code == 200


def test_rows_are_loaded_as_the_schema_would(client, api_app):
    """The fast row check accepts and converts exactly what ForecastInSchema does."""
    market = create_market(client)["id"]
    rows = [
        hour(market, f"{DAY}T01:00:00+09:00", temperature="21.5", wind_speed=3),  # string and int for floats
        hour(market, f"{DAY}T02:00:00.250000+09:00", precipitation_probability=40, sky_code=None),
    ]
    assert ingest(client, *rows).status_code == 200
    listed = client.get("/api/v1/forecasts", query_string={"market_id": market}).json["items"]
    assert [(r["temperature"], r["wind_speed"], r["precipitation_probability"]) for r in listed] == [
        (21.5, 3.0, None),
        (None, None, 40),
    ]
    assert (
        listed[1]["forecast_time"]
        == f"{(datetime.fromisoformat(DAY + 'T02:00:00.25+09:00')).astimezone(UTC).isoformat()}"
    )


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"market_id": True}, "market_id"),  # a bool is no id
        ({"market_id": 1.0}, "market_id"),  # nor a float, under strict
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": 10**400}, "temperature"),
        ({"sky_code": "1"}, "sky_code"),
        ({"forecast_time": 20260801}, "forecast_time"),
        ({"forecast_time": "2026-13-01T12:00:00+09:00"}, "forecast_time"),
    ],
)
def test_rows_are_rejected_as_the_schema_would(client, api_app, row, field):
    market = create_market(client)["id"]
    body = {**hour(market, f"{DAY}T12:00:00+09:00"), **row}
    response = client.post("/api/v1/forecasts", json={"forecasts": [body]}, headers=AUTH)
    assert response.status_code == 422 and list(response.json["fields"]) == [f"forecasts.0.{field}"], response.json


def test_a_bad_batch_reports_its_first_rows_only(client, api_app):
    market = create_market(client)["id"]
    rows = [hour(market, f"{DAY}T{h % 24:02d}:00:00Z", temperature=500.0) for h in range(5000)]
    response = ingest(client, *rows)
    assert response.status_code == 422
    assert sorted(response.json["fields"]) == sorted(f"forecasts.{i}.temperature" for i in range(10))
    assert len(response.data) < 4096
