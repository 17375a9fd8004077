"""Two ingests of the same forecast racing on PostgreSQL raise the alarm exactly once."""

from __future__ import annotations

import threading

import flask_migrate
from sqlalchemy import func, select, text

from models import MarketAlarmLog, PushDelivery, db
from tests.api_helpers import DAY, create_market, hour, register_device, subscribe
from tests.conftest import API_TOKEN, AUTH, make_app


def test_two_threads_ingesting_the_same_forecast_alarm_once(pg_url):
    app = make_app(pg_url, API_TOKEN=API_TOKEN)
    with app.app_context():
        flask_migrate.upgrade()
    setup = app.test_client()
    market = create_market(setup)["id"]
    subscribe(setup, register_device(setup, "racer"), "racer", market, "HEAT")
    body = {"forecasts": [hour(market, f"{DAY}T{h:02d}:00:00+09:00", temperature=36.0) for h in range(24)]}

    barrier = threading.Barrier(2)
    results: list = []

    def race() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/forecasts", json=body, headers=AUTH)
        results.append((response.status_code, response.json))

    for _round in range(3):
        threads = [threading.Thread(target=race) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert [status for status, _ in results] == [200] * 6, results
    raised = [alarm for _, body in results for alarm in body["alarms"]]
    assert len(raised) == 1 and raised[0]["alarm_type"] == "HEAT"
    with app.app_context():
        assert len(db.session.scalars(select(MarketAlarmLog)).all()) == 1
        # One fan-out job (it creates the delivery rows): the losing ingest committed none.
        assert db.session.scalar(select(func.count()).select_from(PushDelivery)) == 0
        assert db.session.scalar(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'push.fan_out'")) == 1
        db.session.remove()
        db.engine.dispose()
