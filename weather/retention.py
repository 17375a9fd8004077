"""Retention: what the service no longer needs is deleted, so its tables do not grow without end.

- ``push_delivery`` rows settled (sent or failed) more than ``keep`` ago: the
  alarm log keeps its ``sent_to_devices`` count; the rows were the record of an
  obligation that is over.
- procrastinate jobs in a final state (failed, cancelled, aborted; succeeded
  ones are deleted by the worker at once) for more than ``keep``, through
  procrastinate's own ``delete_old_jobs``.
- expired rate-limit counters (weather/rate_limits.py).

``flask prune`` runs it; k8s/retention-cronjob.yaml runs that daily. Deletes go
in batches, each committed, so no statement holds row locks for long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import CursorResult, Delete, delete, select, text
from sqlalchemy.orm import Session

from models import PushDelivery, RateLimitCounter, db, utcnow

log = logging.getLogger(__name__)

BATCH = 5000
SETTLED = ("sent", "failed")


@dataclass
class Pruned:
    deliveries: int = 0
    jobs: int = 0
    counters: int = 0


def prune_rows(session: Session, keep: timedelta) -> Pruned:
    """Delete settled deliveries older than ``keep`` and expired counters, BATCH rows per transaction."""
    cutoff = utcnow() - keep
    pruned = Pruned()
    while True:
        batch = (
            select(PushDelivery.id)
            .where(PushDelivery.state.in_(SETTLED), PushDelivery.finished_at < cutoff)
            .limit(BATCH)
            .scalar_subquery()
        )
        deleted = _deleted(session, delete(PushDelivery).where(PushDelivery.id.in_(batch)))
        session.commit()
        pruned.deliveries += deleted
        if deleted < BATCH:
            break
    pruned.counters = _deleted(session, delete(RateLimitCounter).where(RateLimitCounter.expires_at < time.time()))
    session.commit()
    return pruned


def _deleted(session: Session, statement: Delete) -> int:
    """Run a DELETE; how many rows it removed."""
    return cast("CursorResult[Any]", session.execute(statement)).rowcount


def _final_jobs(session: Session) -> int:
    return int(session.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE status <> 'todo'")).scalar_one())


def prune_queue(database_url: str, keep: timedelta) -> None:
    """procrastinate's ``delete_old_jobs`` for every final state, older than ``keep`` (PostgreSQL only)."""
    import procrastinate

    from weather.push.queue import libpq_url, queue_app

    async def run() -> None:
        app = queue_app.with_connector(procrastinate.PsycopgConnector(conninfo=libpq_url(database_url)))
        async with app.open_async():
            await app.job_manager.delete_old_jobs(
                nb_hours=max(1, int(keep.total_seconds() // 3600)),
                include_failed=True,
                include_cancelled=True,
                include_aborted=True,
            )

    asyncio.run(run())


def prune(app: Flask, keep: timedelta) -> Pruned:
    """Everything above, on ``app``'s database."""
    with app.app_context():
        pruned = prune_rows(db.session(), keep)
        if db.engine.dialect.name == "postgresql":
            before = _final_jobs(db.session())
            db.session.rollback()
            prune_queue(app.config["SQLALCHEMY_DATABASE_URI"], keep)
            pruned.jobs = before - _final_jobs(db.session())
            db.session.rollback()
    return pruned


@click.command("prune")
@with_appcontext
@click.option(
    "--keep-days",
    type=click.IntRange(min=1, max=3650),
    default=30,
    show_default=True,
    help="Keep settled deliveries and finished queue jobs this many days.",
)
def prune_command(keep_days: int) -> None:
    """Delete settled push deliveries and finished queue jobs older than --keep-days, and expired rate limits."""
    started = time.monotonic()
    pruned = prune(current_app._get_current_object(), timedelta(days=keep_days))  # type: ignore[attr-defined]
    click.echo(
        f"prune: deleted {pruned.deliveries} settled deliveries, {pruned.jobs} finished queue jobs and "
        f"{pruned.counters} expired rate-limit counters older than {keep_days} days "
        f"in {time.monotonic() - started:.1f} s"
    )


def init_app(app: Flask) -> None:
    """Register ``flask prune``."""
    app.cli.add_command(prune_command)
