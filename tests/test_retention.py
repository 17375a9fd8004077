"""flask prune (weather/retention.py): settled deliveries and finished queue jobs older than --keep-days go;
pending ones, recent ones and the alarm log stay. On SQLite and PostgreSQL (with procrastinate's jobs)."""

from __future__ import annotations

import time
from datetime import date, timedelta

from sqlalchemy import func, select, text

from models import Device, Market, MarketAlarmLog, PushDelivery, RateLimitCounter, db, utcnow


def seed(keep_days: int) -> dict[str, int]:
    """One alarm and a delivery in each (state, age) combination; two rate-limit counters."""
    market = Market(name="광장시장", region="서울", latitude=37.57, longitude=127.0, grid_nx=60, grid_ny=127)
    db.session.add(market)
    db.session.flush()
    alarm = MarketAlarmLog(market_id=market.id, alarm_type="HEAT", target_date=date(2026, 8, 1), title="t", message="m")
    db.session.add(alarm)
    db.session.flush()
    old, recent = utcnow() - timedelta(days=keep_days + 1), utcnow() - timedelta(days=keep_days - 1)
    rows = {
        "sent, old": ("sent", old),
        "failed, old": ("failed", old),
        "sent, recent": ("sent", recent),
        "pending": ("pending", None),
    }
    ids = {}
    for number, (name, (state, finished)) in enumerate(rows.items()):
        device = Device(push_token=f"token-{number}", platform="ios")
        db.session.add(device)
        db.session.flush()
        delivery = PushDelivery(
            alarm_id=alarm.id, device_id=device.id, state=state, finished_at=finished, idempotency_key=f"key-{number}"
        )
        db.session.add(delivery)
        db.session.flush()
        ids[name] = delivery.id
    db.session.add_all(
        [
            RateLimitCounter(key="expired", hits=3, expires_at=time.time() - 1),
            RateLimitCounter(key="live", hits=3, expires_at=time.time() + 60),
        ]
    )
    db.session.commit()
    return ids


def test_prune_deletes_only_what_is_settled_and_old(app):
    with app.app_context():
        ids = seed(keep_days=30)
        jobs = db.engine.dialect.name == "postgresql"
        if jobs:
            # procrastinate's jobs: a failed one finished 40 days ago, a failed one today, one still to do.
            for status, age in (("failed", 40), ("failed", 0), ("todo", 40)):
                job = db.session.execute(
                    text(
                        "INSERT INTO procrastinate_jobs (queue_name, task_name, status)"
                        " VALUES ('push', 'push.send', :status) RETURNING id"
                    ),
                    {"status": status},
                ).scalar_one()
                db.session.execute(
                    text(
                        "INSERT INTO procrastinate_events (job_id, type, at)"
                        " VALUES (:job, 'deferred', now() - make_interval(days => :age))"
                    ),
                    {"job": job, "age": age},
                )
            db.session.commit()

    result = app.test_cli_runner().invoke(args=["prune", "--keep-days", "30"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("prune: deleted 2 settled deliveries") and "1 expired rate-limit counters" in (
        result.output
    ), result.output

    with app.app_context():
        left = set(db.session.scalars(select(PushDelivery.id)))
        assert left == {ids["sent, recent"], ids["pending"]}
        assert db.session.scalar(select(func.count()).select_from(MarketAlarmLog)) == 1
        assert set(db.session.scalars(select(RateLimitCounter.key))) == {"live"}
        if jobs:
            statuses = sorted(db.session.scalars(text("SELECT status::text FROM procrastinate_jobs")))
            assert statuses == ["failed", "todo"], statuses
            assert "1 finished queue jobs" in result.output, result.output


def test_prune_refuses_a_bad_keep_days(app):
    result = app.test_cli_runner().invoke(args=["prune", "--keep-days", "0"])
    assert result.exit_code == 2 and "--keep-days" in result.output
