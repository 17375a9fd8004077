"""The toolset's logger. Every line it emits carries the words "database migration"
(the formatter in ``migrations/alembic.ini`` adds them), so
``kubectl logs POD | grep -A 10 "database migration"`` tells the whole story."""

from __future__ import annotations

import logging

log = logging.getLogger("safe_migrations")
