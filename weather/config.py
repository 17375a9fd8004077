"""Service configuration, read once from the environment (12-factor)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safe_migrations.urls import DatabaseURLError, normalise_database_url


class ConfigError(ValueError):
    """An environment variable with a value the service cannot use."""


def default_database_url(instance_path: str) -> str:
    """The embedded default: a SQLite file under ``instance/``."""
    return f"sqlite:///{Path(instance_path) / 'weather.db'}"


def _log_level(env: Mapping[str, str]) -> str:
    level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if level not in logging.getLevelNamesMapping():
        raise ConfigError(f"LOG_LEVEL={level!r} is not a logging level (use DEBUG, INFO, WARNING or ERROR)")
    return level


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


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
    }


def config_from_environment(instance_path: str) -> dict[str, Any]:
    """``load_config`` over the process environment."""
    return load_config(os.environ, instance_path)
