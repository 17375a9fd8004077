"""Keyset (cursor) pagination: stable and fast on deep pages, unlike OFFSET."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from weather.cursor import issue_cursor
from weather.errors import invalid
from weather.schemas import PG_INT_MAX
from weather.times import within_api_window


def keyset_page(
    session: Session, query: Select, limit: int, cursor_of: Callable[[Any], Sequence[Any]]
) -> dict[str, Any]:
    """Run ``query`` (already filtered past the cursor and ordered) for one page.

    One row more than ``limit`` is fetched to know whether another page exists
    without a COUNT.
    """
    rows = list(session.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": issue_cursor(*cursor_of(rows[-1])) if more else None}


def cursor_datetime(value: object) -> datetime:
    """A datetime part of a decoded cursor; 422 on ``cursor`` unless it is one inside the API's window."""
    try:
        parsed = datetime.fromisoformat(value)  # type: ignore[arg-type]
        moment = parsed.astimezone(UTC) if parsed.utcoffset() is not None else None  # every cursor has an offset
    except (TypeError, ValueError, OverflowError):  # OverflowError: year 1 or 9999 with an offset
        raise invalid("cursor", "not a cursor issued by this API") from None
    if moment is None or not within_api_window(moment):
        raise invalid("cursor", "not a cursor issued by this API")
    return moment


def cursor_int(value: object) -> int:
    """An id part of a decoded cursor; 422 on ``cursor`` if it is not one."""
    # Bounded to PostgreSQL's integer: a forged huge id must be a 422, not a driver error.
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= PG_INT_MAX:
        raise invalid("cursor", "not a cursor issued by this API")
    return value
