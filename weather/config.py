"""Service configuration, read once from the environment (12-factor)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from marshmallow import ValidationError, fields, validate

from safe_migrations.urls import DatabaseURLError, normalise_database_url
from weather.alarm_rules import Thresholds


class ConfigError(click.ClickException, ValueError):
    """An environment variable with a value the service cannot use.

    A ClickException, so when the ``flask`` CLI loads the app (``flask db upgrade``
    with a bad DATABASE_URL) it ends as one line and exit 2, never a traceback.
    """

    exit_code = 2


def default_database_url(instance_path: str) -> str:
    """The embedded default: a SQLite file under ``instance/``."""
    return f"sqlite:///{Path(instance_path) / 'weather.db'}"


def _log_level(env: Mapping[str, str]) -> str:
    level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ConfigError(f"LOG_LEVEL={level!r} is not a logging level (use DEBUG, INFO, WARNING or ERROR)")
    return level


def _number(env: Mapping[str, str], name: str, field: fields.Number, default: float) -> float:
    """``env[name]`` read by a marshmallow number ``field`` (``default`` when unset or blank);
    a ConfigError naming the variable and what is wrong with it."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value: float = field.deserialize(raw)
    except ValidationError as exc:
        raise ConfigError(f"{name}={raw!r}: {' '.join(map(str, exc.messages))}") from None
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    return int(_number(env, name, fields.Integer(validate=validate.Range(min=minimum)), default))


def _float(env: Mapping[str, str], name: str, default: float, minimum: float | None = None) -> float:
    return _number(env, name, fields.Float(allow_nan=False, validate=validate.Range(min=minimum)), default)


def _webhook_url(env: Mapping[str, str]) -> str | None:
    raw = (env.get("PUSH_WEBHOOK_URL") or "").strip()
    if not raw:
        return None
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError("PUSH_WEBHOOK_URL must be an http:// or https:// URL")
    return raw


def _cors_origins(env: Mapping[str, str]) -> tuple[str, ...]:
    """CORS_ORIGINS: comma-separated exact origins (scheme://host[:port]); empty = CORS off."""
    origins = tuple(part.strip() for part in (env.get("CORS_ORIGINS") or "").split(",") if part.strip())
    for origin in origins:
        parsed = urlsplit(origin)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path or parsed.query:
            raise ConfigError(f"CORS_ORIGINS: {origin!r} is not an origin like https://app.example.org")
    return origins


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
        "LOG_LEVEL": _log_level(env),
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 4 * 1024 * 1024, minimum=1024),
        "JSON_SORT_KEYS": False,
        "CORS_ORIGINS": _cors_origins(env),
        **alarm_thresholds(env),
        "PUSH_WEBHOOK_URL": _webhook_url(env),
        "PUSH_TIMEOUT_SECONDS": _float(env, "PUSH_TIMEOUT_SECONDS", 3.0, minimum=0.01),
        "PUSH_RETRIES": _int(env, "PUSH_RETRIES", 2),
        # All pushes of one ingest together; well under gunicorn's worker timeout (30 s).
        "PUSH_BUDGET_SECONDS": _float(env, "PUSH_BUDGET_SECONDS", 10.0, minimum=0),
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
