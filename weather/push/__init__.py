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

from weather.push import worker
from weather.push.deliveries import enqueue_deliveries


def enqueue(session: Session, alarm_ids: Sequence[int]) -> int:
    """The deliveries new alarms owe, in the caller's transaction; on PostgreSQL also their fan-out jobs."""
    created = enqueue_deliveries(session, alarm_ids)
    if created and session.get_bind().dialect.name == "postgresql":
        from weather.push.queue import defer_fan_out

        defer_fan_out(session, alarm_ids)
    return created


def init_app(app: Flask) -> None:
    """Register the ``flask push`` commands (the provider settings are checked by weather.config)."""
    worker.init_app(app)
