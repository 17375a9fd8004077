"""Push delivery: alarms become delivery rows in the alarm's transaction; workers send them.

- ``deliveries``: the rows (enqueue, claim, settle) and the retry policy.
- ``senders``: FCM HTTP v1, webhook, recording.
- ``queue``: procrastinate on PostgreSQL (fan-out deferred with the alarm).
- ``worker``: ``flask push worker``.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Flask
from sqlalchemy.orm import Session

from safe_migrations.urls import is_postgresql
from weather.push import worker
from weather.push.deliveries import enqueue_deliveries


def enqueue(session: Session, alarm_ids: Sequence[int]) -> None:
    """What new alarms owe, committed by the caller's transaction together with the alarms.

    PostgreSQL: one fan-out job per alarm (the queue's own table), which a
    worker expands into one delivery row and one send job per subscribed
    device; the ingest costs the same with 10,000 subscribers as with none.
    SQLite (development, no queue): the delivery rows themselves, which
    ``flask push worker`` drains.
    """
    if not alarm_ids:
        return
    if is_postgresql(session):
        from weather.push.queue import defer_fan_out

        defer_fan_out(session, alarm_ids)
    else:
        enqueue_deliveries(session, alarm_ids)


def init_app(app: Flask) -> None:
    """Register the ``flask push`` commands (the provider settings are checked by weather.config)."""
    worker.init_app(app)
