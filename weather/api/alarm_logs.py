"""/api/v1/alarm-logs: the alarms raised, newest last, with keyset pagination.

The log is an operator's view (it shows delivery counts), so it needs the API token.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, Integer, literal, select, tuple_

from models import Market, MarketAlarmLog, db
from weather.api.blueprint import Blueprint
from weather.api.lookup import get_or_404
from weather.auth import token_required
from weather.pagination import cursor_datetime, cursor_int, keyset_page
from weather.push.deliveries import delivery_counts
from weather.schemas import AlarmLogPageSchema, AlarmLogQuerySchema

blp = Blueprint("alarm_logs", __name__, url_prefix="/api/v1/alarm-logs", description="Alarms raised for markets")


@blp.get("")
@token_required(blp)
@blp.arguments(AlarmLogQuerySchema, location="query")
@blp.response(200, AlarmLogPageSchema)
def list_alarm_logs(args: dict[str, Any]) -> dict[str, Any]:
    """Alarm logs by (created_at, id), filtered by market, type and creation time; follow ``next_cursor``.

    Keyset pagination: each page continues strictly after the last row of the
    previous one, so rows inserted meanwhile never shift or repeat a page, and
    a deep page costs the same as the first (index on market_id, created_at, id).
    """
    log = MarketAlarmLog
    query = select(log).order_by(log.created_at, log.id)
    if "market_id" in args:
        get_or_404(Market, args["market_id"], "market")
        query = query.where(log.market_id == args["market_id"])
    if "alarm_type" in args:
        query = query.where(log.alarm_type == args["alarm_type"])
    if "start" in args:
        query = query.where(log.created_at >= args["start"])
    if "end" in args:
        query = query.where(log.created_at < args["end"])
    if "cursor" in args:
        created_at, last_id = cursor_datetime(args["cursor"][0]), cursor_int(args["cursor"][1])
        after = tuple_(literal(created_at, DateTime(timezone=True)), literal(last_id, Integer))
        query = query.where(tuple_(log.created_at, log.id) > after)
    page = keyset_page(db.session(), query, args["limit"], lambda a: (a.created_at.isoformat(), a.id))
    counts = delivery_counts(db.session(), [alarm.id for alarm in page["items"]])
    page["items"] = [
        {
            **{column.key: getattr(alarm, column.key) for column in MarketAlarmLog.__table__.columns},
            "pending_deliveries": counts[alarm.id]["pending"],
            "failed_deliveries": counts[alarm.id]["failed"],
        }
        for alarm in page["items"]
    ]
    return page
