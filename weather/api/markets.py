"""/api/v1/markets: list, get, create and update traditional markets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Market, db
from weather.api.blueprint import Blueprint
from weather.api.lookup import get_or_404
from weather.auth import token_required
from weather.errors import ApiError, invalid
from weather.grid import in_grid, to_grid
from weather.pagination import cursor_int, keyset_page
from weather.request_limits import body_limit
from weather.schemas import (
    MarketCreateSchema,
    MarketPageSchema,
    MarketQuerySchema,
    MarketSchema,
    MarketUpdateSchema,
)

blp = Blueprint("markets", __name__, url_prefix="/api/v1/markets", description="Traditional markets")

# A market is a few short fields; its body never needs MAX_CONTENT_LENGTH.
MARKET_MAX_BYTES = 16 * 1024


def grid_cell(latitude: float, longitude: float) -> tuple[int, int]:
    """The KMA grid cell of a market position; 422 when it lies outside the KMA forecast grid."""
    try:
        nx, ny = to_grid(latitude, longitude)
    except (ZeroDivisionError, OverflowError, ValueError):
        nx, ny = -1, -1
    if not in_grid(nx, ny):
        raise invalid("latitude", "position is outside the KMA forecast grid (markets must be in Korea)")
    return nx, ny


def _ensure_unique(name: str, region: str, market_id: int | None = None) -> None:
    query = select(Market.id).where(Market.name == name, Market.region == region)
    if market_id is not None:
        query = query.where(Market.id != market_id)
    if db.session.scalar(query.limit(1)) is not None:
        raise ApiError(
            409, "conflict", f"a market named {name!r} already exists in region {region!r}", fields={"name": ["taken"]}
        )


@blp.get("")
@blp.arguments(MarketQuerySchema, location="query")
@blp.response(200, MarketPageSchema)
def list_markets(args: dict[str, Any]) -> dict[str, Any]:
    """List markets by id, optionally in one region; follow ``next_cursor`` for more."""
    query = select(Market).order_by(Market.id)
    if "region" in args:
        query = query.where(Market.region == args["region"])
    if "cursor" in args:
        query = query.where(Market.id > cursor_int(args["cursor"][0]))
    return keyset_page(db.session(), query, args["limit"], lambda m: (m.id,))


@blp.get("/<int:market_id>")
@blp.response(200, MarketSchema)
def get_market(market_id: int) -> Market:
    """One market."""
    return get_or_404(Market, market_id, "market")


@blp.post("")
@token_required(blp)
@body_limit(MARKET_MAX_BYTES)
@blp.arguments(MarketCreateSchema)
@blp.response(201, MarketSchema)
def create_market(data: dict[str, Any]) -> Market:
    """Create a market; its KMA grid cell is computed from latitude/longitude."""
    grid_nx, grid_ny = grid_cell(data["latitude"], data["longitude"])
    _ensure_unique(data["name"], data["region"])
    market = Market(**data, grid_nx=grid_nx, grid_ny=grid_ny)
    db.session.add(market)
    db.session.commit()
    return market


@blp.patch("/<int:market_id>")
@token_required(blp)
@body_limit(MARKET_MAX_BYTES)
@blp.arguments(MarketUpdateSchema)
@blp.response(200, MarketSchema)
def update_market(data: dict[str, Any], market_id: int) -> Market:
    """Change some fields of a market; a new position recomputes the grid cell."""
    market = get_or_404(Market, market_id, "market")
    latitude = data.get("latitude", market.latitude)
    longitude = data.get("longitude", market.longitude)
    grid_nx, grid_ny = grid_cell(latitude, longitude)
    if "name" in data or "region" in data:
        _ensure_unique(data.get("name", market.name), data.get("region", market.region), market.id)
    for key, value in data.items():
        setattr(market, key, value)
    market.grid_nx, market.grid_ny = grid_nx, grid_ny
    db.session.commit()
    return market
