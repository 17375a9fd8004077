"""Request bodies refused by size before anything reads them."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge


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


def init_app(app: Flask) -> None:
    """Refuse oversized declared bodies first thing in every request."""
    app.before_request(refuse_oversized_body)
