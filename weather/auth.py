"""Bearer-token authentication of the write (operator) endpoints."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import Any

from flask import current_app, request
from flask_smorest import Blueprint

from weather.errors import ApiError

# The OpenAPI security scheme name the protected operations refer to.
BEARER_SCHEME = "bearerAuth"
Security = list[dict[str, list[str]]]
BEARER_SECURITY: Security = [{BEARER_SCHEME: []}]


def check_api_token() -> None:
    """Raise ApiError unless the request carries ``Authorization: Bearer $API_TOKEN``.

    An unset API_TOKEN refuses every write (503): a forgotten secret must never
    leave the API open.
    """
    expected = current_app.config.get("API_TOKEN")
    if not expected:
        raise ApiError(503, "writes_disabled", "API_TOKEN is not configured; write endpoints are disabled.")
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected.encode()):
        raise ApiError(
            401,
            "unauthorized",
            "A valid 'Authorization: Bearer <token>' header is required.",
            headers={"WWW-Authenticate": 'Bearer realm="weather-backend"'},
        )


View = Callable[..., Any]


def guarded(blp: Blueprint, check: Callable[[dict[str, Any]], object], security: Security) -> Callable[[View], View]:
    """The one decorator of a protected view: ``check(view's URL arguments)`` runs first, and the
    OpenAPI document of ``blp`` names ``security`` for the operation.

    Apply it directly under the route decorator (above ``arguments``), so the
    credential is checked before the body is parsed: an unauthenticated client
    learns nothing about the schema and cannot make the server parse large bodies.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check(kwargs)
            return view(*args, **kwargs)

        documented: View = blp.doc(security=security)(wrapper)
        return documented

    return decorate


def token_required(blp: Blueprint) -> Callable[[View], View]:
    """Run the view only for requests with the API token (operators)."""
    return guarded(blp, lambda _: check_api_token(), BEARER_SECURITY)
