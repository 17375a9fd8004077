"""Opaque cursors for keyset pagination.

A cursor is the sort key of the last row of a page, encoded so that clients
treat it as a token, not as something to build or edit.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


class InvalidCursor(ValueError):
    """A cursor that this service did not issue (or that was altered)."""


def encode_cursor(*key: Any) -> str:
    """An opaque token for the sort key ``key`` (JSON-serialisable parts)."""
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, length: int) -> list[Any]:
    """The sort key inside ``token``; raise InvalidCursor unless it has ``length`` parts."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidCursor("not a cursor issued by this API") from None
    if not isinstance(key, list) or len(key) != length:
        raise InvalidCursor("not a cursor issued by this API")
    return key
