"""The toolset's logger. Every line it emits carries the words "database migration"
(the formatter in ``migrations/alembic.ini`` adds them), so
``kubectl logs POD | grep -A 10 "database migration"`` tells the whole story."""

from __future__ import annotations

import logging

from safe_migrations.urls import mask_password

log = logging.getLogger("safe_migrations")


def first_line(exc: BaseException) -> str:
    """The first line of an error (of the driver's error if wrapped), password masked."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return mask_password(text.splitlines()[0]) if text else type(exc).__name__
