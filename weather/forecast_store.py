"""The one write path for forecasts (the API's bulk ingest and the KMA fetcher): check the batch,
upsert it set-based, judge every touched (market, KST day) in SQL, record the alarms it raises.

On PostgreSQL the rows go through COPY into a temporary table, then one
``INSERT ... SELECT ... ON CONFLICT DO UPDATE``; the alarm rules read one
aggregate row per touched (market, day), computed by the database over all of
that day's stored hours. On SQLite (the embedded default) the same steps run
as multi-row INSERTs and a per-market aggregate query.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, Table, bindparam, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from models import Forecast, Market, MarketAlarmLog, utcnow
from safe_migrations.urls import is_postgresql
from weather import push
from weather.alarm_rules import Alarm, DaySummary, Thresholds, evaluate_day
from weather.errors import invalid
from weather.times import kst_date, kst_day_bounds
from weather.upsert import insert_for

MEASUREMENTS = (
    "temperature",
    "precipitation_probability",
    "precipitation_mm",
    "snowfall_cm",
    "wind_speed",
    "sky_code",
)
COLUMNS = ("market_id", "forecast_time", *MEASUREMENTS)
# SQLite: rows per INSERT statement, far below its bound-parameter limit (9 columns x 500 rows).
CHUNK_ROWS = 500
# Korea has had no daylight saving time since 1988: the zone and the fixed +09:00 agree.
KST_ZONE = "Asia/Seoul"

# The staging table of one ingest: temporary (this connection only), dropped at commit at the
# latest. Its own MetaData: it is no model, and the migrations never see it.
_staging = Table(
    "forecast_ingest",
    MetaData(),
    Column("market_id", Integer),
    Column("forecast_time", DateTime(timezone=True)),
    Column("temperature", Float),
    Column("precipitation_probability", Integer),
    Column("precipitation_mm", Float),
    Column("snowfall_cm", Float),
    Column("wind_speed", Float),
    Column("sky_code", Integer),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


@dataclass(frozen=True)
class StoreResult:
    """What one write did: rows inserted or updated, and the alarms it newly recorded."""

    upserted: int
    alarms: list[MarketAlarmLog]


def store_forecasts(
    session: Session,
    rows: Sequence[dict[str, Any]],
    thresholds: Thresholds,
    columns: Sequence[str] = MEASUREMENTS,
) -> StoreResult:
    """Write checked forecast rows (see weather.schemas.FORECAST_ROWS) and record the alarms they raise.

    An hour already stored gets ``columns`` replaced (default: every
    measurement, since a measurement left out is no longer forecast) and keeps
    the others: the ultra-short-term forecast updates what it carries and
    leaves the short-term forecast's precipitation probability as it was.
    The batch is written whole or not at all (the caller commits). Raises an
    ApiError 422 for a batch that names an unknown market or the same
    (market, hour) twice, before anything is written.
    """
    if not rows:
        return StoreResult(0, [])
    unknown_columns = set(columns) - set(MEASUREMENTS)
    if unknown_columns or not columns:
        raise ValueError(f"not forecast measurements: {sorted(unknown_columns) or 'none given'}")
    check_batch(session, rows)
    replaced = (*columns, "updated_at")
    if is_postgresql(session):
        summaries = _upsert_postgresql(session, rows, replaced)
    else:
        _upsert_chunked(session, rows, replaced)
        summaries = _day_summaries_by_market(session, rows)
    return StoreResult(len(rows), record_alarms(session, _alarms(session, summaries, thresholds)))


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
        others = f" (nor do {', '.join(map(str, unknown[1:20]))})" if len(unknown) > 1 else ""
        raise invalid(f"forecasts.{first}.market_id", f"market {unknown[0]} does not exist{others}")


# --------------------------------------------------------------------------- PostgreSQL


def _copy_text(rows: Iterable[dict[str, Any]]) -> io.StringIO:
    """The rows in COPY's text format (tab-separated, \\N for NULL); values are checked numbers and times."""
    lines = []
    for row in rows:
        values = [row[name] for name in COLUMNS]
        lines.append("\t".join("\\N" if value is None else str(value) for value in values))
    lines.append("")
    return io.StringIO("\n".join(lines))


def _upsert_postgresql(
    session: Session, rows: Sequence[dict[str, Any]], replaced: Sequence[str]
) -> list[tuple[int, date, DaySummary]]:
    connection = session.connection()
    _staging.create(connection)
    # psycopg2's COPY, on the session's own connection and transaction.
    psycopg2_connection: Any = connection.connection.dbapi_connection
    with psycopg2_connection.cursor() as cursor:
        cursor.copy_expert(f"COPY forecast_ingest ({', '.join(COLUMNS)}) FROM STDIN", _copy_text(rows))
    # A fixed order makes concurrent ingests lock rows in the same order: no deadlock.
    now = bindparam("now", utcnow(), type_=DateTime(timezone=True))
    ordered = select(*_staging.c, now.label("updated_at")).order_by(_staging.c.market_id, _staging.c.forecast_time)
    upsert = postgresql.insert(Forecast).from_select([*COLUMNS, "updated_at"], ordered)
    upsert = upsert.on_conflict_do_update(
        index_elements=["market_id", "forecast_time"],
        set_={name: upsert.excluded[name] for name in replaced},
    )
    session.execute(upsert)
    summaries = session.execute(_PG_DAY_SUMMARIES).all()
    _staging.drop(connection)  # a second write in the same transaction starts afresh
    return [(market_id, day, DaySummary(*measures)) for market_id, day, *measures in summaries]


# Every (market, KST day) the staged rows touch, aggregated over ALL stored hours of that day:
# one index range scan per day, only the aggregates cross the wire.
_PG_DAY_SUMMARIES = text(
    f"""
    WITH touched AS (
        SELECT DISTINCT market_id, (forecast_time AT TIME ZONE '{KST_ZONE}')::date AS day FROM forecast_ingest
    )
    SELECT t.market_id, t.day, max(f.temperature), min(f.temperature), max(f.wind_speed),
           max(f.precipitation_mm), sum(f.snowfall_cm)
    FROM touched t
    JOIN forecast f ON f.market_id = t.market_id
     AND f.forecast_time >= (t.day::timestamp AT TIME ZONE '{KST_ZONE}')
     AND f.forecast_time < ((t.day + 1)::timestamp AT TIME ZONE '{KST_ZONE}')
    GROUP BY t.market_id, t.day
    ORDER BY t.market_id, t.day
    """
)


# --------------------------------------------------------------------------- SQLite


def _upsert_chunked(session: Session, rows: Sequence[dict[str, Any]], replaced: Sequence[str]) -> None:
    """Insert or update every row by (market_id, forecast_time) in a few multi-row statements."""
    now = utcnow()
    ordered = sorted(rows, key=lambda r: (r["market_id"], r["forecast_time"]))
    values = [{**{name: row[name] for name in COLUMNS}, "updated_at": now} for row in ordered]
    for start in range(0, len(values), CHUNK_ROWS):
        stmt = insert_for(session, Forecast).values(values[start : start + CHUNK_ROWS])
        stmt = stmt.on_conflict_do_update(
            index_elements=["market_id", "forecast_time"],
            set_={name: stmt.excluded[name] for name in replaced},
        )
        session.execute(stmt)


def _day_summaries_by_market(session: Session, rows: Sequence[dict[str, Any]]) -> list[tuple[int, date, DaySummary]]:
    """The portable path: per market, one aggregate query over the touched days' range."""
    days: dict[int, set[date]] = defaultdict(set)
    for row in rows:
        days[row["market_id"]].add(kst_date(row["forecast_time"]))
    # SQLite stores UTC as naive text: shifting it by nine hours gives the KST date.
    day = func.date(Forecast.forecast_time, "+9 hours")
    summaries = []
    for market_id, touched in sorted(days.items()):
        start, _ = kst_day_bounds(min(touched))
        _, end = kst_day_bounds(max(touched))
        found = session.execute(
            select(
                day,
                func.max(Forecast.temperature),
                func.min(Forecast.temperature),
                func.max(Forecast.wind_speed),
                func.max(Forecast.precipitation_mm),
                func.sum(Forecast.snowfall_cm),
            )
            .where(Forecast.market_id == market_id, Forecast.forecast_time >= start, Forecast.forecast_time < end)
            .group_by(day)
            .order_by(day)
        )
        for text_day, *measures in found:
            if (parsed := date.fromisoformat(text_day)) in touched:
                summaries.append((market_id, parsed, DaySummary(*measures)))
    return summaries


# --------------------------------------------------------------------------- alarms


def _alarms(session: Session, summaries: Sequence[tuple[int, date, DaySummary]], thresholds: Thresholds) -> list[Alarm]:
    """The alarms of the summarised days; market names are read only for the days that alarm."""
    pending = [(m, d, s) for m, d, s in summaries if evaluate_day(m, "", d, s, thresholds)]
    if not pending:
        return []
    ids = {market_id for market_id, _, _ in pending}
    names = {
        market_id: name for market_id, name in session.execute(select(Market.id, Market.name).where(Market.id.in_(ids)))
    }
    alarms: list[Alarm] = []
    for market_id, day, summary in pending:
        alarms.extend(evaluate_day(market_id, names[market_id], day, summary, thresholds))
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
