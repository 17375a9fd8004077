"""weather-backend: the whole wiring of the service in one place.

``create_app()`` reads configuration from the environment, connects the
database and the migration toolset, registers the API blueprints and turns
every error into JSON. ``flask`` finds it on its own (or with FLASK_APP=app.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask_migrate import Migrate

import safe_migrations.flask_ext
import safe_migrations.log
import weather.api
import weather.forecasts_cli
import weather.http_headers
import weather.push
import weather.rate_limits
import weather.request_limits
import weather.retention
from models import db
from weather.config import config_from_environment
from weather.errors import register_error_handlers
from weather.health import bp as health_bp
from weather.log_safety import quiet_http_client_logs

MIGRATIONS_DIRECTORY = "migrations"

migrate = Migrate()


class ReadableJSON(DefaultJSONProvider):
    """Market names and alarm texts are Korean: send them readable, not as \\uXXXX escapes."""

    ensure_ascii = False


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the Flask application; ``overrides`` replace environment settings (tests)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(config_from_environment(app.instance_path))
    app.config.from_mapping(overrides or {})
    safe_migrations.log.configure(app.config["LOG_LEVEL"])  # one log format for every process
    quiet_http_client_logs()  # httpx would log each request's full URL (KMA's service key)
    app.json = ReadableJSON(app)
    _ensure_sqlite_directory(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/" + MIGRATIONS_DIRECTORY))
    safe_migrations.flask_ext.init_app(app)

    app.register_blueprint(health_bp)
    weather.api.init_app(app)  # /api/v1/... and /api/v1/openapi.json (flask-smorest)
    weather.push.init_app(app)
    weather.retention.init_app(app)  # flask prune: settled deliveries, finished queue jobs, expired counters
    app.cli.add_command(weather.forecasts_cli.cli)  # flask forecasts fetch (the KMA CronJob)
    weather.http_headers.init_app(app)  # security headers; CORS only for CORS_ORIGINS
    weather.request_limits.init_app(app)  # 413 for a declared body over MAX_CONTENT_LENGTH, unread
    weather.rate_limits.init_app(app)  # 429 for anonymous device endpoints, counted in the database
    # After the API: flask-smorest installs an error handler that this one replaces.
    register_error_handlers(app)
    return app


def _ensure_sqlite_directory(app: Flask) -> None:
    # The embedded default lives under instance/, which a fresh checkout lacks.
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
