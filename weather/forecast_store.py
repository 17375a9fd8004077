"""Bulk forecast ingest: validate the whole batch, upsert it set-based, record the alarms it raises."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Forecast, Market, MarketAlarmLog, utcnow
from weather import push
from weather.alarm_rules import Alarm, Hour, Thresholds, evaluate_day
from weather.errors import ApiError, invalid
from weather.times import as_utc, kst_date, kst_day_bounds
from weather.upsert import insert_for

MEASUREMENTS = (
    "temperature",
    "precipitation_probability",
    "precipitation_mm",
    "snowfall_cm",
    "wind_speed",
    "sky_code",
)
# Rows per INSERT statement: set-based, yet far below SQLite's and PostgreSQL's
# bound-parameter limits (9 columns x 500 rows).
CHUNK_ROWS = 500


def check_batch(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Raise a 422 for a batch that cannot be written as a whole; nothing is written then.

    Two rows for the same (market, hour) are ambiguous (which one wins?), and
    PostgreSQL refuses to upsert one row twice in a statement.
    """
    seen: dict[tuple[int, Any], int] = {}
    for index, row in enumerate(rows):
        key = (row["market_id"], row["forecast_time"])
        if key in seen:
            raise invalid(f"forecasts.{index}", f"duplicates forecasts.{seen[key]} (same market_id and forecast_time)")
        seen[key] = index
    wanted = {row["market_id"] for row in rows}
    known = set(session.scalars(select(Market.id).where(Market.id.in_(wanted))))
    unknown = sorted(wanted - known)
    if unknown:
        first = next(i for i, row in enumerate(rows) if row["market_id"] == unknown[0])
        raise ApiError(
            422,
            "unprocessable_entity",
            f"forecasts.{first}.market_id: unknown market id(s) {', '.join(map(str, unknown[:20]))}",
            fields={f"forecasts.{first}.market_id": [f"market {unknown[0]} does not exist"]},
        )


def upsert_forecasts(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert or update every row by (market_id, forecast_time) in a few multi-row statements."""
    now = utcnow()
    # A fixed order makes concurrent ingests lock rows in the same order: no deadlock.
    ordered = sorted(rows, key=lambda r: (r["market_id"], r["forecast_time"]))
    values = [
        {
            "market_id": r["market_id"],
            "forecast_time": as_utc(r["forecast_time"]),
            # An hour is replaced as a whole: a measurement left out is no longer forecast.
            **{name: r.get(name) for name in MEASUREMENTS},
            "updated_at": now,
        }
        for r in ordered
    ]
    for start in range(0, len(values), CHUNK_ROWS):
        stmt = insert_for(session, Forecast).values(values[start : start + CHUNK_ROWS])
        stmt = stmt.on_conflict_do_update(
            index_elements=["market_id", "forecast_time"],
            set_={name: stmt.excluded[name] for name in (*MEASUREMENTS, "updated_at")},
        )
        session.execute(stmt)
    return len(values)


def _market_days(rows: Sequence[dict[str, Any]]) -> dict[int, set[date]]:
    days: dict[int, set[date]] = defaultdict(set)
    for row in rows:
        days[row["market_id"]].add(kst_date(row["forecast_time"]))
    return days


def alarms_for(session: Session, rows: Sequence[dict[str, Any]], thresholds: Thresholds) -> list[Alarm]:
    """The alarms of every (market, KST day) the batch touched, judged on all of that day's stored hours."""
    alarms: list[Alarm] = []
    market_ids = {r["market_id"] for r in rows}
    names = {i: name for i, name in session.execute(select(Market.id, Market.name).where(Market.id.in_(market_ids)))}
    for market_id, days in sorted(_market_days(rows).items()):
        start, _ = kst_day_bounds(min(days))
        _, end = kst_day_bounds(max(days))
        hours: dict[date, list[Hour]] = defaultdict(list)
        stored = session.execute(
            select(
                Forecast.forecast_time,
                Forecast.temperature,
                Forecast.precipitation_mm,
                Forecast.snowfall_cm,
                Forecast.wind_speed,
            ).where(Forecast.market_id == market_id, Forecast.forecast_time >= start, Forecast.forecast_time < end)
        )
        for forecast_time, *measures in stored:
            day = kst_date(forecast_time)
            if day in days:
                hours[day].append(Hour(*measures))
        for day in sorted(hours):
            alarms.extend(evaluate_day(market_id, names[market_id], day, hours[day], thresholds))
    return alarms


def record_alarms(session: Session, alarms: Sequence[Alarm]) -> list[MarketAlarmLog]:
    """Insert the alarms not yet recorded; return only the rows this call inserted.

    ON CONFLICT DO NOTHING on (market, type, target date) makes a repeated or a
    concurrent ingest of the same forecast raise each alarm exactly once. The
    single place new alarms are inserted, so every alarm (API ingest or fetcher)
    gets its push deliveries, in the caller's transaction.
    """
    if not alarms:
        return []
    now = utcnow()
    stmt = (
        insert_for(session, MarketAlarmLog)
        .values(
            [
                {
                    "market_id": a.market_id,
                    "alarm_type": a.alarm_type,
                    "target_date": a.target_date,
                    "title": a.title,
                    "message": a.message,
                    "created_at": now,
                    "sent_to_devices": 0,
                }
                for a in alarms
            ]
        )
        .on_conflict_do_nothing(index_elements=["market_id", "alarm_type", "target_date"])
        .returning(MarketAlarmLog.id)
    )
    ids = list(session.scalars(stmt))
    if not ids:
        return []
    # Same transaction: an alarm commits together with the deliveries it owes.
    push.enqueue(session, ids)
    return list(session.scalars(select(MarketAlarmLog).where(MarketAlarmLog.id.in_(ids)).order_by(MarketAlarmLog.id)))
