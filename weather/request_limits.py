"""Bounds on one request's work: its body refused by size before anything reads it, its SQL statements timed out."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, has_request_context, request
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction
from werkzeug.exceptions import RequestEntityTooLarge

from models import db
from safe_migrations.urls import is_postgresql


def refuse_oversized_body() -> None:
    """413 when the declared Content-Length exceeds the request's limit (MAX_CONTENT_LENGTH or smaller).

    A ``before_request`` hook, so the answer comes before authentication and
    parsing, and the body is never read. Chunked bodies declare no length; the
    JSON parser (weather/api/blueprint.py) stops them at the limit.
    """
    limit = request.max_content_length
    if request.content_length is not None and limit is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def body_limit(max_bytes: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a view to accept at most ``max_bytes`` of body (never more than MAX_CONTENT_LENGTH).

    For endpoints anyone may call with small bodies (a device registration), so
    a stranger cannot make the server read and parse megabytes.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current = request.max_content_length
            request.max_content_length = max_bytes if current is None else min(current, max_bytes)
            refuse_oversized_body()
            return view(*args, **kwargs)

        return wrapper

    return decorate


def bound_statements(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    """``after_begin`` hook: within a web request, each PostgreSQL statement gets REQUEST_STATEMENT_TIMEOUT.

    A request stuck behind a lock (a long transaction, a migration) then ends
    in a 503 JSON answer from the app, well before gunicorn's worker timeout
    would kill the worker. ``SET LOCAL`` ends with the transaction, so CLI
    commands, workers and migrations on the same engine keep their own settings.
    """
    if has_request_context() and is_postgresql(connection):
        milliseconds = int(current_app.config["REQUEST_STATEMENT_TIMEOUT"] * 1000)
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")


def init_app(app: Flask) -> None:
    """Refuse oversized declared bodies first thing in every request; time out its SQL statements."""
    app.before_request(refuse_oversized_body)
    if not event.contains(db.session, "after_begin", bound_statements):
        event.listen(db.session, "after_begin", bound_statements)
