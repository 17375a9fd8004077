"""Rate limits on the endpoints anyone may call: flask-limiter, counting in the service's own database.

Device registration, subscription changes and unregistration need no operator
token, so without limits one address could register thousands of fake devices
and subscribe each to every market (more fan-out rows, more provider calls).
flask-limiter keys, checks and answers (429 with Retry-After, turned into the
API's JSON error shape by weather/errors.py); the counters live in the
``rate_limit_counter`` table through ``DatabaseStorage``, so every pod and every
worker process counts against the same limit, with no new infrastructure.

Why not the alternatives: limits' own storages need Redis, Memcached, MongoDB
or etcd (new infrastructure); its memory storage counts per process, so N pods
would allow N times the limit. pyrate-limiter's PostgreSQL bucket keeps one row
per hit in one table per bucket and locks that table on every hit: a bucket per
address or device would mean a table per address. One upsert per hit on a
primary key (fixed window) is the whole cost here.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, current_app, request
from flask_limiter import Limiter
from limits.storage import Storage
from sqlalchemy import case, delete, select
from sqlalchemy.exc import SQLAlchemyError

from models import RateLimitCounter, db
from weather.upsert import insert_for

STORAGE_URI = "weather-database://"


def client_address() -> str:
    """The client's address: the peer's, or the one a trusted proxy appended to X-Forwarded-For.

    Behind an ingress every request comes from the ingress controller: without
    this, all clients would share one limit. Only proxies in FORWARDED_ALLOW_IPS
    (the setting gunicorn reads too) are believed, and only for the last address
    in the header (the one that proxy saw), so a client cannot pick its own key.
    """
    peer = request.remote_addr or "-"
    trusted = current_app.config["FORWARDED_ALLOW_IPS"]
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded and ("*" in trusted or peer in trusted):
        return forwarded.rsplit(",", 1)[-1].strip() or peer
    return peer


limiter = Limiter(key_func=client_address, storage_uri=STORAGE_URI)


def device_key() -> str:
    """The device a request changes (the ``device_id`` of its URL), for per-device limits."""
    return f"device:{(request.view_args or {}).get('device_id')}"


def per_address(setting: str) -> Any:
    """A limit per client address, read from the ``setting`` config value (e.g. "30 per minute").

    Shared by every endpoint decorated with the same setting: changing subscriptions
    and unregistering draw on one budget.
    """
    return limiter.shared_limit(
        lambda: current_app.config[setting],
        scope=setting,
        key_func=client_address,
        error_message="Too many requests from this address; retry after the seconds in Retry-After.",
    )


def per_device(setting: str) -> Any:
    """A limit per device, read from the ``setting`` config value (shared like ``per_address``)."""
    return limiter.shared_limit(
        lambda: current_app.config[setting],
        scope=setting,
        key_func=device_key,
        error_message="Too many changes to this device; retry after the seconds in Retry-After.",
    )


class DatabaseStorage(Storage):
    """limits' storage interface on the ``rate_limit_counter`` table (fixed-window strategy only).

    Each hit is one upsert: a live window counts up, an expired one starts again.
    It uses the app's engine on a connection of its own, so a counter is
    committed whatever happens to the request's transaction.
    """

    STORAGE_SCHEME = ["weather-database"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        table = RateLimitCounter.__table__
        with db.engine.begin() as connection:
            insert = insert_for(connection, table)
            expired = table.c.expires_at <= now
            statement = insert.values(key=key, hits=amount, expires_at=now + expiry)
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.key],
                set_={
                    "hits": case((expired, statement.excluded.hits), else_=table.c.hits + statement.excluded.hits),
                    "expires_at": case((expired, statement.excluded.expires_at), else_=table.c.expires_at),
                },
            ).returning(table.c.hits)
            return int(connection.execute(statement).scalar_one())

    def _row(self, key: str) -> Any:
        with db.engine.connect() as connection:
            return connection.execute(
                select(RateLimitCounter.hits, RateLimitCounter.expires_at).where(
                    RateLimitCounter.key == key, RateLimitCounter.expires_at > time.time()
                )
            ).first()

    def get(self, key: str) -> int:
        row = self._row(key)
        return int(row.hits) if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._row(key)
        return float(row.expires_at) if row else time.time()

    def check(self) -> bool:
        try:
            with db.engine.connect() as connection:
                connection.execute(select(1))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with db.engine.begin() as connection:
            return connection.execute(delete(RateLimitCounter)).rowcount

    def clear(self, key: str) -> None:
        with db.engine.begin() as connection:
            connection.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key))


def init_app(app: Flask) -> None:
    """Count in the database; a storage failure lets the request through (it then meets the database itself)."""
    app.config.setdefault("RATELIMIT_STORAGE_URI", STORAGE_URI)
    app.config.setdefault("RATELIMIT_STRATEGY", "fixed-window")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)
