"""Every error the API can return, turned into JSON in one place."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, ProgrammingError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

# An error body names at most this many fields, each path and problem cut to a
# readable length: hostile input (thousands of bad items, a megabyte-long
# field name) must not make the answer large. A few KB at most.
MAX_ERROR_FIELDS = 10
MAX_ERROR_PROBLEMS = 2  # per field
MAX_ERROR_TEXT = 120
# PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout (weather/request_limits.py).
QUERY_CANCELED = "57014"
# A table the code queries does not exist: the database is reachable, but not migrated.
# PostgreSQL: SQLSTATE undefined_table; SQLite: its "no such table" message.
UNDEFINED_TABLE = "42P01"
_SQLITE_NO_SUCH_TABLE = re.compile(r"no such table: (\w+)")
_POSTGRESQL_NO_SUCH_TABLE = re.compile(r'relation "(\w+)" does not exist')


def missing_table(exc: Exception) -> str | None:
    """The table a database error says is missing, or None for any other error."""
    orig = getattr(exc, "orig", None)
    text = str(orig or "")
    if getattr(orig, "pgcode", None) == UNDEFINED_TABLE:
        found = _POSTGRESQL_NO_SUCH_TABLE.search(text)
        return found.group(1) if found else "?"
    found = _SQLITE_NO_SUCH_TABLE.search(text) if isinstance(exc, OperationalError) else None
    return found.group(1) if found else None


class ApiError(Exception):
    """An error the API reports on purpose: a status, a code word and a sentence.

    ``fields`` maps a field (dotted path for nested input) to its problems.
    """

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        fields: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})


def invalid(field: str, problem: str) -> ApiError:
    """A 422 naming one input field and its problem."""
    return ApiError(422, "unprocessable_entity", f"{field}: {problem}", fields={field: [problem]})


def not_found(what: str, ident: object) -> ApiError:
    """A 404 for an id that does not exist."""
    return ApiError(404, "not_found", f"{what} {ident} does not exist.")


def error_body(status: int, error: str, message: str, **details: object) -> dict:
    """The one JSON error shape: ``{"error": ..., "message": ..., ...details}``."""
    return {"error": error, "message": message, "status": status, **details}


def _short(text: object) -> str:
    text = str(text)
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 3] + "..."


def _flatten(messages: object, prefix: str = "") -> Iterator[tuple[str, list[str]]]:
    """webargs/marshmallow messages as ``("field.sub.0.name", ["problem", ...])`` pairs, lazily."""
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            yield from _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return
    problems = messages if isinstance(messages, list) else [messages]
    if problems and all(isinstance(p, str) for p in problems):
        yield prefix or "_schema", [str(p) for p in problems]
        return
    for index, problem in enumerate(problems):
        yield from _flatten(problem, f"{prefix}.{index}" if prefix else str(index))


def _field_messages(exc: HTTPException) -> dict[str, list[str]] | None:
    data = getattr(exc, "data", None)
    messages = data.get("messages") if isinstance(data, dict) else None
    if not messages:
        return None
    # webargs keys messages by location ("json", "query"); the field path is what clients need.
    locations = messages.values() if isinstance(messages, Mapping) else [messages]
    pairs = itertools.chain.from_iterable(_flatten(value) for value in locations)
    return {
        _short(path): [_short(problem) for problem in problems[:MAX_ERROR_PROBLEMS]]
        for path, problems in itertools.islice(pairs, MAX_ERROR_FIELDS)
    }


def _utf8_safe(value: object) -> object:
    """``value`` with unpaired surrogates (echoed from hostile input, e.g. a field name) escaped."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        return {_utf8_safe(k): _utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utf8_safe(item) for item in value]
    return value


def _json(body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None) -> Response:
    response = jsonify(_utf8_safe(body))
    response.status_code = status
    for header, value in (headers or {}).items():
        response.headers[header] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Turn HTTP errors, database outages and unexpected exceptions into JSON.

    Call it after flask-smorest's ``Api.init_app``: that registers its own
    HTTPException handler, which this one replaces.
    """

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        details = {"fields": exc.fields} if exc.fields else {}
        return _json(error_body(exc.status, exc.error, exc.message, **details), exc.status, exc.headers)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        fields = _field_messages(exc)
        details: dict[str, object] = {}
        if fields:
            details["fields"] = fields
            if status == 400:
                message = "The request body is not valid JSON."
            else:
                message = "; ".join(f"{field}: {' '.join(problems)}" for field, problems in list(fields.items())[:5])
        headers = {k: v for k, v in getattr(exc, "get_headers", lambda: [])() if k.lower() != "content-type"}
        return _json(error_body(status, name, message, **details), status, headers)

    @app.errorhandler(IntegrityError)
    def conflict(exc: IntegrityError) -> Response:
        # Input is validated before writing, so what remains is a race with another
        # request (e.g. two creates of the same market): report it, never a 500.
        log.info("integrity error answered 409: %s", type(exc.orig).__name__)
        _rollback()
        return _json(error_body(409, "conflict", "The request conflicts with the current state of the resource."), 409)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    @app.errorhandler(ProgrammingError)
    def database_unavailable(exc: Exception) -> Response:
        table = missing_table(exc)
        if table is not None:  # reachable, but its schema is missing: say so, not "not reachable"
            log.error("database schema missing: no table %s; run `flask db upgrade`", table)
            _rollback()
            message = f"The database has no table {table}: its schema is not migrated (run flask db upgrade)."
            return _json(error_body(503, "database_schema_missing", message), 503, {"Retry-After": "5"})
        if isinstance(exc, ProgrammingError):  # a bug, not an outage
            return unexpected(exc)
        # The message of a driver error can include the host; keep it out of the body.
        log.warning("database unavailable: %s", type(exc.orig if hasattr(exc, "orig") else exc).__name__)
        _rollback()
        if getattr(getattr(exc, "orig", None), "pgcode", None) == QUERY_CANCELED:
            body = error_body(503, "database_timeout", "The database did not answer in time; try again shortly.")
        else:
            body = error_body(503, "database_unavailable", "The database is not reachable; try again shortly.")
        return _json(body, 503, {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        _rollback()
        return http_error(InternalServerError())


def _rollback() -> None:
    from models import db

    try:
        db.session.rollback()
    except Exception:  # the session may be unusable (connection lost); the response matters more
        log.debug("rollback after error failed", exc_info=True)
