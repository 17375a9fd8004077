"""Time conventions: stored in UTC, shown ISO 8601 with offset, grouped by the KST day."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone

# Korea has no daylight saving time, so a fixed offset is exact (and needs no tzdata).
KST = timezone(timedelta(hours=9), "KST")


def kst_date(value: datetime) -> date:
    """The calendar date in Korea at the aware instant ``value``: the day an alarm is about."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: every time in the service is aware")
    return value.astimezone(KST).date()


def kst_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of the Korean calendar day ``day``."""
    start = datetime.combine(day, time(0), tzinfo=KST).astimezone(UTC)
    return start, start + timedelta(days=1)


# Every instant the API accepts (query bounds, cursors, times in a body) lies in this
# window: far wider than any real forecast or log entry, and far enough from
# datetime's limits that converting between offsets never overflows.
API_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
API_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def within_api_window(value: datetime) -> bool:
    """Whether the aware instant ``value`` lies in [API_EARLIEST, API_LATEST)."""
    return API_EARLIEST <= value < API_LATEST
