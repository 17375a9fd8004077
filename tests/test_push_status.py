"""``flask push status``: the queue at a glance, before any worker has run (SQLite and PostgreSQL)."""

from __future__ import annotations

from tests.api_helpers import DAY, create_market, hour, ingest, register_device, subscribe


def test_push_status_shows_an_alarms_pending_deliveries_before_any_worker_runs(api_app, client):
    market = create_market(client)["id"]
    for token in ("status-phone-1", "status-phone-2"):
        subscribe(client, register_device(client, token), token, market, "HEAT")
    response = ingest(client, hour(market, f"{DAY}T15:00:00+09:00", temperature=35.0))
    [alarm] = response.json["alarms"]

    result = api_app.test_cli_runner().invoke(args=["push", "status"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    [line] = [line for line in lines if line.startswith(f"alarm {alarm['id']} ")]
    assert "HEAT): 2 pending" in line and line.endswith("0 failed"), line
    assert lines[-1].startswith("push status: ") and "deliveries pending" in lines[-1], lines[-1]
    if api_app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # No worker ran: the fan-out job waits in the queue, and the alarm's two deliveries wait for it.
        assert "(2 awaiting fan-out)" in line, line
        assert "queue jobs: " in lines[-1] and "oldest waiting " in lines[-1], lines[-1]
