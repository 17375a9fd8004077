"""/api/v1/alarm-logs: filters, auth and keyset pagination under concurrent inserts."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from models import MarketAlarmLog, db, utcnow
from tests.api_helpers import DAY, create_market, hour, ingest
from tests.conftest import AUTH


def add_logs(app, market_id: int, count: int, first_day: date, alarm_type: str = "HEAT") -> None:
    with app.app_context():
        db.session.add_all(
            MarketAlarmLog(
                market_id=market_id,
                alarm_type=alarm_type,
                target_date=first_day + timedelta(days=i),
                title="t",
                message="m",
                created_at=utcnow(),
            )
            for i in range(count)
        )
        db.session.commit()


def all_pages(client, **query) -> list[int]:
    ids: list[int] = []
    while True:
        page = client.get("/api/v1/alarm-logs", query_string=query, headers=AUTH).json
        ids += [row["id"] for row in page["items"]]
        if page["next_cursor"] is None:
            return ids
        query["cursor"] = page["next_cursor"]


def test_lists_alarms_raised_by_ingest(client):
    market = create_market(client)["id"]
    ingest(client, hour(market, f"{DAY}T12:00:00+09:00", temperature=35.0, wind_speed=20.0))
    page = client.get("/api/v1/alarm-logs", query_string={"market_id": market}, headers=AUTH).json
    assert [row["alarm_type"] for row in page["items"]] == ["HEAT", "WIND"]
    assert page["next_cursor"] is None
    assert set(page["items"][0]) == {
        "id",
        "market_id",
        "alarm_type",
        "target_date",
        "title",
        "message",
        "created_at",
        "sent_to_devices",
        "pending_deliveries",
        "failed_deliveries",
    }
    heat = client.get("/api/v1/alarm-logs", query_string={"market_id": market, "alarm_type": "HEAT"}, headers=AUTH)
    assert [row["alarm_type"] for row in heat.json["items"]] == ["HEAT"]


def test_time_range_and_market_filters(client, api_app):
    a, b = create_market(client)["id"], create_market(client)["id"]
    add_logs(api_app, a, 3, date(2026, 8, 1))
    add_logs(api_app, b, 2, date(2026, 8, 1), "RAIN")
    assert len(all_pages(client, market_id=a)) == 3
    assert len(all_pages(client, alarm_type="RAIN")) == 2
    assert len(all_pages(client)) == 5
    assert all_pages(client, start="2099-01-01T00:00:00+09:00") == []
    assert len(all_pages(client, end="2099-01-01T00:00:00Z")) == 5


def test_keyset_pages_return_every_row_once_while_rows_are_inserted(client, api_app):
    market = create_market(client)["id"]
    add_logs(api_app, market, 25, date(2026, 1, 1))
    with api_app.app_context():
        existing = [row.id for row in db.session.query(MarketAlarmLog.id).order_by(MarketAlarmLog.id)]
    seen: list[int] = []
    query: dict = {"market_id": market, "limit": 4}
    inserted_day = date(2027, 1, 1)
    while True:
        page = client.get("/api/v1/alarm-logs", query_string=query, headers=AUTH).json
        seen += [row["id"] for row in page["items"]]
        # New alarms arrive between the pages, as they do in production.
        add_logs(api_app, market, 2, inserted_day)
        inserted_day += timedelta(days=2)
        if page["next_cursor"] is None or len(seen) > 200:
            break
        query["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)), "a row was returned twice"
    assert set(existing) <= set(seen), "a row was skipped"
    assert seen == sorted(seen)


def test_alarm_logs_need_the_token(client):
    assert client.get("/api/v1/alarm-logs").status_code == 401
    assert client.get("/api/v1/alarm-logs", headers={"Authorization": "Bearer x"}).status_code == 401


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"alarm_type": "FOG"}, 422, "alarm_type"),
        ({"market_id": 0}, 422, "market_id"),
        ({"limit": 501}, 422, "limit"),
        ({"cursor": "WyJ4IiwgMV0"}, 422, "cursor"),
        ({"cursor": "WzFd"}, 422, "cursor"),
        ({"cursor": "!!"}, 422, "cursor"),
        ({"start": "2026-08-02T00:00:00Z", "end": "2026-08-02T00:00:00Z"}, 422, "end"),
        ({"market_id": 4242}, 404, None),
    ],
)
def test_query_errors(client, query, status, field):
    response = client.get("/api/v1/alarm-logs", query_string=query, headers=AUTH)
    assert response.status_code == status, response.json
    if field:
        assert field in response.json["fields"]
