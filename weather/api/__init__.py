"""The JSON API under /api/v1: flask-smorest blueprints, one module per collection."""

from __future__ import annotations

import flask_smorest
from flask import Flask

from weather.api import alarm_logs, devices, forecasts, markets
from weather.auth import BEARER_SCHEME
from weather.device_auth import DEVICE_SCHEME, DEVICE_TOKEN_HEADER
from weather.schemas import ErrorSchema


class Api(flask_smorest.Api):
    """flask-smorest's Api documenting our real error body (weather/errors.py) for every error response."""

    ERROR_SCHEMA = ErrorSchema


def init_app(app: Flask) -> Api:
    """Register the API blueprints and the OpenAPI document at /api/v1/openapi.json."""
    # One Api per app: it holds the app's OpenAPI spec, and tests build many apps.
    api = Api(app)
    api.spec.components.security_scheme(BEARER_SCHEME, {"type": "http", "scheme": "bearer"})
    api.spec.components.security_scheme(DEVICE_SCHEME, {"type": "apiKey", "in": "header", "name": DEVICE_TOKEN_HEADER})
    for module in (markets, devices, forecasts, alarm_logs):
        api.register_blueprint(module.blp)
    return api
