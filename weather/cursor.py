"""Signed, opaque cursors for keyset pagination.

A cursor is the sort key of the last row of a page, signed with HMAC
(itsdangerous) so that clients treat it as a token, not as something to build
or edit: a forged or altered cursor is refused before its content is parsed.

The signing key comes from configuration, so every worker and every pod
accepts the cursors the others issued (a random key per process would break
the next page whenever it lands on another worker): ``CURSOR_SECRET`` if set,
otherwise the ``API_TOKEN`` (itsdangerous derives the HMAC key from it, it is
never used raw), otherwise a fixed development key -- then cursors are
unsigned in effect, and their content is still range-checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app, request
from itsdangerous import BadData, URLSafeSerializer

# Longer than any cursor this API issues (two parts and a signature: about 100 characters).
MAX_CURSOR_LENGTH = 200
DEVELOPMENT_KEY = "weather-backend development cursor key (set CURSOR_SECRET or API_TOKEN)"


class InvalidCursor(ValueError):
    """A cursor that this service did not issue (or that was altered)."""


def cursor_secret(config: Mapping[str, Any]) -> str:
    """The key cursors are signed with, from the app's configuration."""
    return config.get("CURSOR_SECRET") or config.get("API_TOKEN") or DEVELOPMENT_KEY


def _serializer(secret: str, scope: str) -> URLSafeSerializer:
    # The scope (the endpoint) is the salt: a cursor of one listing is no cursor of another.
    return URLSafeSerializer(secret, salt=f"weather-backend cursor {scope}")


def encode_cursor(secret: str, scope: str, *key: Any) -> str:
    """A signed token for the sort key ``key`` (JSON-serialisable parts), valid for ``scope`` only."""
    return _serializer(secret, scope).dumps(list(key))


def decode_cursor(secret: str, scope: str, token: str, length: int) -> list[Any]:
    """The sort key inside ``token``; raise InvalidCursor unless this service signed it with ``length`` parts.

    The signature is checked before the payload is decoded.
    """
    if len(token) > MAX_CURSOR_LENGTH:
        raise InvalidCursor("not a cursor issued by this API")
    try:
        key = _serializer(secret, scope).loads(token)
    except BadData:
        raise InvalidCursor("not a cursor issued by this API") from None
    if not isinstance(key, list) or len(key) != length:
        raise InvalidCursor("not a cursor issued by this API")
    return key


def issue_cursor(*key: Any) -> str:
    """``encode_cursor`` for the endpoint serving the current request."""
    return encode_cursor(cursor_secret(current_app.config), str(request.endpoint), *key)


def read_cursor(token: str, length: int) -> list[Any]:
    """``decode_cursor`` for the endpoint serving the current request."""
    return decode_cursor(cursor_secret(current_app.config), str(request.endpoint), token, length)
