"""/api/v1/forecasts: bulk ingest (raises and pushes alarms) and listing by market and time."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from sqlalchemy import select

from models import Forecast, Market, db
from weather.alarm_rules import Thresholds
from weather.api.blueprint import Blueprint
from weather.api.lookup import get_or_404
from weather.auth import token_required
from weather.forecast_store import store_forecasts
from weather.pagination import cursor_datetime, keyset_page
from weather.schemas import ForecastBatchSchema, ForecastPageSchema, ForecastQuerySchema, IngestResultSchema

log = logging.getLogger(__name__)

blp = Blueprint("forecasts", __name__, url_prefix="/api/v1/forecasts", description="Hourly forecasts per market")


@blp.post("")
@token_required(blp)
@blp.arguments(ForecastBatchSchema)
@blp.response(200, IngestResultSchema)
def ingest_forecasts(data: dict[str, Any]) -> dict[str, Any]:
    """Upsert many markets' forecast hours and record the alarms they call for.

    The batch, its new alarms and the push deliveries they owe are written in
    one transaction, whole or not at all. Push workers send them afterwards:
    this request never waits for a push provider.
    """
    stored = store_forecasts(db.session(), data["forecasts"], Thresholds.from_config(current_app.config))
    upserted, new_alarms = stored.upserted, stored.alarms
    db.session.commit()
    return {"upserted": upserted, "alarms": new_alarms}


@blp.get("")
@blp.arguments(ForecastQuerySchema, location="query")
@blp.response(200, ForecastPageSchema)
def list_forecasts(args: dict[str, Any]) -> dict[str, Any]:
    """A market's forecast hours in a time range, by forecast time; follow ``next_cursor`` for more."""
    get_or_404(Market, args["market_id"], "market")
    query = select(Forecast).where(Forecast.market_id == args["market_id"]).order_by(Forecast.forecast_time)
    if "start" in args:
        query = query.where(Forecast.forecast_time >= args["start"])
    if "end" in args:
        query = query.where(Forecast.forecast_time < args["end"])
    if "cursor" in args:
        query = query.where(Forecast.forecast_time > cursor_datetime(args["cursor"][0]))
    return keyset_page(db.session(), query, args["limit"], lambda f: (f.forecast_time.isoformat(),))
