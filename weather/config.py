"""Service configuration, read once from the environment (12-factor)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from limits import parse_many

from safe_migrations.settings import SettingsError, read_choice, read_number
from safe_migrations.urls import DatabaseURLError, normalise_database_url
from weather.alarm_rules import Thresholds
from weather.forecast_rows import ForecastWindow

# The one settings error of the project (safe_migrations.settings reads every setting): a
# ClickException, so when the ``flask`` CLI loads the app (``flask db upgrade`` with a bad
# DATABASE_URL) it ends as one line and exit 2, never a traceback.
ConfigError = SettingsError


def default_database_url(instance_path: str) -> str:
    """The embedded default: a SQLite file under ``instance/``."""
    return f"sqlite:///{Path(instance_path) / 'weather.db'}"


def _log_level(env: Mapping[str, str]) -> str:
    level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ConfigError(f"LOG_LEVEL={level!r} is not a logging level (use DEBUG, INFO, WARNING or ERROR)")
    return level


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    return int(read_number(env, name, default, minimum=minimum, maximum=maximum, whole=True))


def _float(env: Mapping[str, str], name: str, default: float, minimum: float | None = None) -> float:
    return read_number(env, name, default, minimum=minimum)


def _push_url(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    raw = (env.get(name) or "").strip() or default
    if not raw:
        return None
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http:// or https:// URL")
    return raw


def _service_account_project(credentials: str) -> str:
    """The project of a service account key; its content (a private key) never reaches the message."""
    try:
        info = json.loads(credentials)
    except ValueError:
        info = None
    fields = ("client_email", "private_key", "project_id")
    if not isinstance(info, dict) or not all(isinstance(info.get(f), str) and info[f] for f in fields):
        raise ConfigError(f"FCM_CREDENTIALS is not a service account key (JSON with {', '.join(fields)})")
    return info["project_id"]


APP_ENVS = ("development", "production")
PUSH_PROVIDERS = ("recording", "webhook", "fcm")


def push_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Push delivery: the provider, its credentials and the retry policy (see weather/push/).

    FCM_CREDENTIALS is checked here when it is set, but required only where a
    sender is built (``flask push worker``): the API pods, the fetch CronJob and
    the post-deploy Job never send, so the Secret's service account key is
    mounted into the push workers alone.
    """
    webhook_url = _push_url(env, "PUSH_WEBHOOK_URL")
    credentials = (env.get("FCM_CREDENTIALS") or "").strip() or None
    implied = "webhook" if webhook_url else "fcm" if credentials else "recording"
    provider = read_choice(env, "PUSH_PROVIDER", implied, PUSH_PROVIDERS)
    if provider == "webhook" and not webhook_url:
        raise ConfigError("PUSH_PROVIDER=webhook needs PUSH_WEBHOOK_URL")
    project_id = (env.get("FCM_PROJECT_ID") or "").strip() or None
    if credentials:
        project_id = project_id or _service_account_project(credentials)
    app_env = read_choice(env, "APP_ENV", "development", APP_ENVS)
    if app_env == "production" and provider == "recording":
        raise ConfigError("APP_ENV=production refuses the recording push sender: set PUSH_PROVIDER to fcm or webhook")
    return {
        "APP_ENV": app_env,
        "PUSH_PROVIDER": provider,
        "PUSH_WEBHOOK_URL": webhook_url,
        "FCM_CREDENTIALS": credentials,
        "FCM_PROJECT_ID": project_id,
        "FCM_ENDPOINT": _push_url(env, "FCM_ENDPOINT", "https://fcm.googleapis.com"),
        "FCM_TOKEN_URI": _push_url(env, "FCM_TOKEN_URI"),
        # One provider call, start to end (connect, TLS, request, the whole answer).
        "PUSH_TIMEOUT_SECONDS": _float(env, "PUSH_TIMEOUT_SECONDS", 10.0, minimum=0.01),
        "PUSH_MAX_ATTEMPTS": _int(env, "PUSH_MAX_ATTEMPTS", 8, minimum=1),
        "PUSH_MAX_AGE_SECONDS": _float(env, "PUSH_MAX_AGE_SECONDS", 6 * 3600.0, minimum=1),
        "PUSH_RETRY_BASE_SECONDS": _float(env, "PUSH_RETRY_BASE_SECONDS", 2.0, minimum=0),
        "PUSH_RETRY_MAX_SECONDS": _float(env, "PUSH_RETRY_MAX_SECONDS", 600.0, minimum=0),
        # Provider calls one worker has in flight (and send jobs it runs). FCM takes
        # about 10,000 messages/s per project: 128 calls of ~100 ms each are 1,280/s
        # per worker, so a few workers reach it; the cap keeps a typo from opening
        # thousands of sockets.
        "PUSH_WORKER_CONCURRENCY": _int(env, "PUSH_WORKER_CONCURRENCY", 128, minimum=1, maximum=1024),
        # Deliveries per send job: one job is one lane, sent one after another.
        "PUSH_BATCH_SIZE": _int(env, "PUSH_BATCH_SIZE", 20, minimum=1, maximum=1000),
        "PUSH_SHUTDOWN_SECONDS": _float(env, "PUSH_SHUTDOWN_SECONDS", 20.0, minimum=0),
        "PUSH_STALLED_SECONDS": _float(env, "PUSH_STALLED_SECONDS", 30.0, minimum=1),
    }


def _cors_origins(env: Mapping[str, str]) -> tuple[str, ...]:
    """CORS_ORIGINS: comma-separated exact origins (scheme://host[:port]); empty = CORS off."""
    origins = tuple(part.strip() for part in (env.get("CORS_ORIGINS") or "").split(",") if part.strip())
    for origin in origins:
        parsed = urlsplit(origin)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path or parsed.query:
            raise ConfigError(f"CORS_ORIGINS: {origin!r} is not an origin like https://app.example.org")
    return origins


def _http_url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = (env.get(name) or "").strip() or default
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
        raise ConfigError(f"{name} must be an http:// or https:// URL without a query")
    return raw.rstrip("/")


# KMA's short-term forecast service (단기예보 조회서비스); `flask forecasts fetch` appends the operation.
KMA_DEFAULT_BASE_URL = "https://apis.data.go.kr/1360000/VilageFcstInfoService_2.0"


def kma_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """How `flask forecasts fetch` talks to KMA. The service key is a credential: never logged."""
    return {
        "KMA_BASE_URL": _http_url(env, "KMA_BASE_URL", KMA_DEFAULT_BASE_URL),
        "KMA_SERVICE_KEY": (env.get("KMA_SERVICE_KEY") or "").strip() or None,
        "KMA_CONCURRENCY": _int(env, "KMA_CONCURRENCY", 4, 1, 64),
        "KMA_TIMEOUT_SECONDS": _float(env, "KMA_TIMEOUT_SECONDS", 10.0, minimum=0.01),
        "KMA_RETRIES": _int(env, "KMA_RETRIES", 3, 0, 10),
        "KMA_RETRY_BACKOFF_SECONDS": _float(env, "KMA_RETRY_BACKOFF_SECONDS", 1.0, minimum=0),
        # numOfRows: one cell's ~900 values of a base time fit in one page of 1,000.
        "KMA_ROWS_PER_PAGE": _int(env, "KMA_ROWS_PER_PAGE", 1000, 1, 10_000),
        # What one cell may hold, whatever the upstream claims: a real cell is one page, ~1,000
        # items and ~100 hours (short-term) or 60 items and 6 hours (ultra-short-term).
        "KMA_MAX_PAGES": _int(env, "KMA_MAX_PAGES", 10, 1, 100),
        "KMA_MAX_ITEMS_PER_CELL": _int(env, "KMA_MAX_ITEMS_PER_CELL", 5000, 1, 100_000),
        "KMA_MAX_HOURS_PER_CELL": _int(env, "KMA_MAX_HOURS_PER_CELL", 150, 1, 1000),
    }


def forecast_window(env: Mapping[str, str]) -> dict[str, float]:
    """How far from now a forecast time may lie (ingest and fetch alike): a year back, a month ahead."""
    default = ForecastWindow()
    return {
        "FORECAST_MAX_PAST_DAYS": _float(env, "FORECAST_MAX_PAST_DAYS", default.max_past_days, minimum=0),
        "FORECAST_MAX_FUTURE_DAYS": _float(env, "FORECAST_MAX_FUTURE_DAYS", default.max_future_days, minimum=0),
    }


def alarm_thresholds(env: Mapping[str, str]) -> dict[str, float]:
    """Alarm thresholds; the defaults are KMA advisory levels (see weather/alarm_rules.py)."""
    kma = Thresholds()
    return {
        "ALARM_HEAT_MAX_TEMP_C": _float(env, "ALARM_HEAT_MAX_TEMP_C", kma.heat_max_temp_c),
        "ALARM_COLD_MIN_TEMP_C": _float(env, "ALARM_COLD_MIN_TEMP_C", kma.cold_min_temp_c),
        "ALARM_WIND_SPEED_MS": _float(env, "ALARM_WIND_SPEED_MS", kma.wind_speed_ms, minimum=0),
        "ALARM_RAIN_HOURLY_MM": _float(env, "ALARM_RAIN_HOURLY_MM", kma.rain_hourly_mm, minimum=0),
        "ALARM_SNOW_DAILY_CM": _float(env, "ALARM_SNOW_DAILY_CM", kma.snow_daily_cm, minimum=0),
    }


def rate_limits(env: Mapping[str, str]) -> dict[str, Any]:
    """Limits on the endpoints anyone may call (weather/rate_limits.py), in flask-limiter's notation.

    Per address, generous: many phones share one carrier address (CGNAT). Per
    device, tight: a real phone changes its subscriptions a few times a day.
    """
    defaults = {
        "RATE_LIMIT_REGISTRATIONS": "30 per minute; 300 per hour",
        "RATE_LIMIT_DEVICE_CHANGES_PER_ADDRESS": "60 per minute; 600 per hour",
        "RATE_LIMIT_DEVICE_CHANGES_PER_DEVICE": "10 per minute; 100 per hour",
    }
    limits: dict[str, Any] = {
        # Proxies whose X-Forwarded-For names the client (gunicorn.conf.py reads the same variable).
        "FORWARDED_ALLOW_IPS": tuple(
            ip.strip() for ip in (env.get("FORWARDED_ALLOW_IPS") or "127.0.0.1").split(",") if ip.strip()
        ),
    }
    for name, default in defaults.items():
        value = (env.get(name) or "").strip() or default
        try:
            parse_many(value)
        except ValueError:
            raise ConfigError(f'{name}={value!r} is not a rate limit such as "10 per minute; 100 per hour"') from None
        limits[name] = value
    return limits


def load_config(env: Mapping[str, str], instance_path: str) -> dict[str, Any]:
    """Build the Flask config from ``env``; raise ConfigError naming a bad variable."""
    raw_url = env.get("DATABASE_URL") or default_database_url(instance_path)
    try:
        database_url = normalise_database_url(raw_url)
    except DatabaseURLError as exc:
        raise ConfigError(f"DATABASE_URL: {exc}") from None
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        # Stale pooled connections (after a database restart) are replaced
        # transparently instead of failing the next request.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "API_TOKEN": env.get("API_TOKEN") or None,
        # Signs pagination cursors (weather/cursor.py); unset = derived from API_TOKEN.
        "CURSOR_SECRET": env.get("CURSOR_SECRET") or None,
        "LOG_LEVEL": _log_level(env),
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 4 * 1024 * 1024, minimum=1024),
        # Each SQL statement of a web request, on PostgreSQL; below gunicorn's worker timeout (30 s).
        "REQUEST_STATEMENT_TIMEOUT": _float(env, "REQUEST_STATEMENT_TIMEOUT", 20.0, minimum=0.001),
        "JSON_SORT_KEYS": False,
        "CORS_ORIGINS": _cors_origins(env),
        **alarm_thresholds(env),
        **push_settings(env),
        **forecast_window(env),
        **kma_settings(env),
        **rate_limits(env),
        # flask-smorest: the OpenAPI document is generated from the schemas that validate input.
        "API_TITLE": "weather-backend",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }


def config_from_environment(instance_path: str) -> dict[str, Any]:
    """``load_config`` over the process environment."""
    return load_config(os.environ, instance_path)
