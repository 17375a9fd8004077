"""Every error the API can return, turned into JSON in one place."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)


def error_body(status: int, error: str, message: str, **details: object) -> dict:
    """The one JSON error shape: ``{"error": ..., "message": ..., ...details}``."""
    return {"error": error, "message": message, "status": status, **details}


def register_error_handlers(app: Flask) -> None:
    """Turn HTTP errors, database outages and unexpected exceptions into JSON."""

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        name = (exc.name or "error").lower().replace(" ", "_")
        body = error_body(exc.code or 500, name, exc.description or exc.name)
        # flask-smorest/webargs attach the field errors of a failed validation.
        messages = getattr(exc, "data", {}).get("messages") if isinstance(getattr(exc, "data", None), dict) else None
        if messages:
            body["fields"] = messages
        response = jsonify(body)
        response.status_code = exc.code or 500
        for header, value in getattr(exc, "get_headers", lambda: [])():
            if header.lower() != "content-type":
                response.headers[header] = value
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(exc: Exception):
        # The message of a driver error can include the host; keep it out of the body.
        log.warning("database unavailable: %s", type(exc.orig if hasattr(exc, "orig") else exc).__name__)
        response = jsonify(error_body(503, "database_unavailable", "The database is not reachable; try again shortly."))
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return http_error(InternalServerError())
