"""Every SQLAlchemy model of weather-backend.

The schema itself is owned by the migrations in ``migrations/versions``; these
classes describe it, and ``flask db check`` proves the two agree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Stable constraint and index names, so a later migration can drop them by name
# on every database (PostgreSQL and SQLite alike).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PLATFORMS = ("ios", "android", "web")
ALARM_TYPES = ("RAIN", "HEAT", "COLD", "WIND", "SNOW")
DELIVERY_STATES = ("pending", "sent", "failed")


class Base(DeclarativeBase):
    # procrastinate (the push queue) owns the procrastinate_* tables; its schema
    # arrives through a revision, so `flask db check` leaves those tables alone.
    metadata = MetaData(naming_convention=NAMING_CONVENTION, info={"foreign_table_prefixes": ("procrastinate_",)})


db = SQLAlchemy(model_class=Base)

if TYPE_CHECKING:
    # A type checker cannot take a base class from an attribute (python/mypy#8603); db.Model is
    # built from Base's bases with Base's registry and metadata, so Base describes it.
    Model = Base
else:
    Model = db.Model


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (how every timestamp is stored)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always an aware UTC datetime in Python, on every database.

    SQLAlchemy's documented TypeDecorator recipe: PostgreSQL's ``timestamptz``
    comes back aware, SQLite's text comes back naive (it is UTC, since every
    value is stored as UTC); both are read as aware UTC here, once, instead of
    being patched where they are read. A naive value is refused on the way in.
    The column is a plain ``DateTime(timezone=True)`` to the database and to
    Alembic (``__repr__`` renders it so in a generated migration).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware UTC times (models.utcnow)")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def __repr__(self) -> str:
        return "sa.DateTime(timezone=True)"


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Market(Model):
    """A traditional market; its forecast grid cell is derived from its position."""

    __tablename__ = "market"
    # A market is known by its name within its region; a second create is a 409, not a twin.
    __table_args__ = (Index("uq_market_name_region", "name", "region", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(50), index=True)
    address: Mapped[str | None] = mapped_column(String(255))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    # KMA short-term forecast (DFS) grid cell, computed from latitude/longitude.
    grid_nx: Mapped[int] = mapped_column(Integer)
    grid_ny: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Device(Model):
    """A phone or browser that receives push alarms, identified by its push token."""

    __tablename__ = "device"
    __table_args__ = (CheckConstraint(_in_list("platform", PLATFORMS), name="platform"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    push_token: Mapped[str] = mapped_column(String(255), unique=True)
    platform: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="device", cascade="all, delete-orphan", passive_deletes=True
    )


class Subscription(Model):
    """One device wants one alarm type for one market."""

    __tablename__ = "subscription"
    __table_args__ = (
        UniqueConstraint("device_id", "market_id", "alarm_type"),
        CheckConstraint(_in_list("alarm_type", ALARM_TYPES), name="alarm_type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    market_id: Mapped[int] = mapped_column(ForeignKey("market.id", ondelete="CASCADE"), index=True)
    alarm_type: Mapped[str] = mapped_column(String(10))

    device: Mapped[Device] = relationship(back_populates="subscriptions")


class Forecast(Model):
    """One forecast hour for one market; re-ingesting the same hour updates it."""

    __tablename__ = "forecast"
    __table_args__ = (UniqueConstraint("market_id", "forecast_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    market_id: Mapped[int] = mapped_column(ForeignKey("market.id", ondelete="CASCADE"))
    forecast_time: Mapped[datetime] = mapped_column(UTCDateTime)
    temperature: Mapped[float | None] = mapped_column(Float)
    precipitation_probability: Mapped[int | None] = mapped_column(Integer)
    precipitation_mm: Mapped[float | None] = mapped_column(Float)
    snowfall_cm: Mapped[float | None] = mapped_column(Float)
    wind_speed: Mapped[float | None] = mapped_column(Float)
    sky_code: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class MarketAlarmLog(Model):
    """An alarm raised for a market; at most one per (market, type, target date)."""

    __tablename__ = "market_alarm_log"
    __table_args__ = (
        UniqueConstraint("market_id", "alarm_type", "target_date"),
        CheckConstraint(_in_list("alarm_type", ALARM_TYPES), name="alarm_type"),
        # Keyset pagination of one market's log by (created_at, id) reads this index in order.
        Index("ix_market_alarm_log_market_id_created_at_id", "market_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    market_id: Mapped[int] = mapped_column(ForeignKey("market.id", ondelete="CASCADE"))
    alarm_type: Mapped[str] = mapped_column(String(10))
    target_date: Mapped[date] = mapped_column(Date)
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # How many devices the alarm was pushed to. Added by its own migration; the
    # server default makes the column cheap to add (no table rewrite).
    sent_to_devices: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class PushDelivery(Model):
    """One alarm owed to one device: committed with the alarm, sent by a push worker.

    The row is the durable record of the obligation; the queue only says when
    to try it. ``idempotency_key`` stays the same across retries, so a provider
    (or the device) can tell a retry from a new alarm.
    """

    __tablename__ = "push_delivery"
    __table_args__ = (
        UniqueConstraint("alarm_id", "device_id"),
        CheckConstraint(_in_list("state", DELIVERY_STATES), name="state"),
        # The alarm log counts each alarm's pending and failed deliveries from this index alone.
        Index("ix_push_delivery_alarm_id_state", "alarm_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("market_alarm_log.id", ondelete="CASCADE"))
    # SET NULL: an unregistered device's deliveries stay visible (as failed), without its token.
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id", ondelete="SET NULL"), index=True)
    state: Mapped[str] = mapped_column(String(10), default="pending", server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(String(300))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Not before this moment: the retry back-off, and the lease of the worker sending it now.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RateLimitCounter(Model):
    """One fixed-window counter of the API's rate limits (weather/rate_limits.py).

    In the database, so every pod counts against the same limit: an address
    spreading its requests over the pods behind the Service gains nothing.
    ``key`` names the limit, the address or device and the window (flask-limiter's
    key); ``expires_at`` is when the window ends (Unix seconds). Expired rows are
    reused by the next hit, and removed by ``flask prune``.
    """

    __tablename__ = "rate_limit_counter"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
