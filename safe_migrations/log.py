"""The toolset's logger. Every line it emits carries the words "database migration"
(the formatter in ``migrations/alembic.ini`` adds them), so
``kubectl logs POD | grep -A 10 "database migration"`` tells the whole story."""

from __future__ import annotations

import logging
from typing import Any

from safe_migrations.urls import mask_password

log = logging.getLogger("safe_migrations")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def server_words(error: Any) -> str | None:
    """PostgreSQL's own words for a driver error: the primary message, then DETAIL and HINT.

    The driver's ``str()`` keeps only what fits its first line, and the
    DETAIL (``Key (region, name)=(..) is duplicated``) and HINT are what tell
    a person which rows or which setting to fix. None for errors that did not
    come from the server (psycopg2 exposes them as ``diag``).
    """
    diag: Any = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if not primary:
        return None
    words = [_one_line(primary)]
    for label, text in (("DETAIL", diag.message_detail), ("HINT", diag.message_hint)):
        if text:
            words.append(f"{label}: {_one_line(text)}")
    return "; ".join(words)


def first_line(exc: BaseException) -> str:
    """An error in one line (password masked): PostgreSQL's primary message, DETAIL and HINT
    when the server raised it, else the first line of the (driver's) error."""
    error = getattr(exc, "orig", None) or exc
    said = server_words(error)
    if said:
        return mask_password(said)
    text = str(error).strip()
    return mask_password(text.splitlines()[0]) if text else type(exc).__name__
