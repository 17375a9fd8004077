"""The push queue on PostgreSQL: procrastinate tasks, the fan-out deferred with the alarm, the worker.

Why procrastinate: its queue lives in the PostgreSQL the service already has
(no broker to run), workers claim jobs with ``FOR UPDATE SKIP LOCKED``, it
retries with a strategy we choose, and its schema arrives through our own
Alembic revision, under the toolset's lock, ledger and lint.

The ingest's transaction inserts the alarm and one ``push.fan_out`` job per
alarm (``defer_fan_out``): both commit together, or neither does, so a pod
killed after the commit loses nothing, and the ingest's cost does not grow
with the number of subscribers. A worker runs the fan-out (one
``push_delivery`` row per subscribed device, and one ``push.send`` job per
PUSH_BATCH_SIZE of them), and every worker sends. Each job is one lane of
its worker: its deliveries one after another, so a worker's
PUSH_WORKER_CONCURRENCY is both the jobs it runs and the provider calls it
has in flight, and the queue's own cost (fetch, finish) is paid once per
batch, not per device. A batch with deliveries still to retry raises
``RetryLater``; the retry strategy below turns it into procrastinate's retry
at the time our policy chose (back-off with jitter, or the provider's
Retry-After). procrastinate keeps what it does well: jobs committed with the
alarm, retries at a chosen time, and a SIGKILLed worker's jobs queued again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import procrastinate
from flask import Flask
from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision
from procrastinate.tasks import configure_task
from procrastinate.types import JSONValue
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from models import db
from weather.push.deliveries import DeliveryBook, Policy, enqueue_deliveries, pending_for_alarm, send_batch
from weather.push.senders import PushSender

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE = "push"
FAN_OUT_TASK = "push.fan_out"
SEND_TASK = "push.send"
# A job that fails for an unexpected reason (the database restarting) is tried
# again this many times, after 1, 2, 4 ... 60 s.
UNEXPECTED_ERROR_RETRIES = 20
# Send jobs deferred per statement by a fan-out.
DEFER_AT_ONCE = 500
# Connections of procrastinate's pool per worker (the deliveries' own go through SQLAlchemy's).
QUEUE_CONNECTIONS = 6


class RetryLater(Exception):
    """Raised by a send job whose delivery should be tried again in ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.1f} s")
        self.delay = delay


class DeliveryRetryStrategy(BaseRetryStrategy):
    """Our delivery policy decides when (RetryLater); anything else retries with a short capped back-off."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, RetryLater):
            return RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=exception.delay))
        if job.attempts >= UNEXPECTED_ERROR_RETRIES:
            return None
        return RetryDecision(retry_in={"seconds": min(60, 2**job.attempts)})


queue_app = procrastinate.App(connector=procrastinate.PsycopgConnector())


def _runtime(context: procrastinate.JobContext) -> WorkerRuntime:
    return context.additional_context["push"]


@queue_app.task(name=FAN_OUT_TASK, queue=QUEUE, pass_context=True, retry=DeliveryRetryStrategy())
async def fan_out(context: procrastinate.JobContext, alarm_id: int) -> int:
    """The alarm's delivery rows (one per subscribed device), then one send job per pending one.

    A rerun (after a crash) creates no second row and only adds send jobs that
    find their delivery settled or leased.
    """
    runtime = _runtime(context)

    def expand(session: Session) -> list[int]:
        enqueue_deliveries(session, [alarm_id])
        session.commit()
        return pending_for_alarm(session, alarm_id)

    ids = await asyncio.to_thread(runtime.in_session, expand)
    # Through this worker's (opened) app: a task object still belongs to the module-level app.
    deferrer = configure_task(name=SEND_TASK, job_manager=context.app.job_manager, queue=QUEUE)
    size = runtime.batch_size
    batches: list[dict[str, JSONValue]] = [
        {"delivery_ids": list[JSONValue](ids[start : start + size])} for start in range(0, len(ids), size)
    ]
    for start in range(0, len(batches), DEFER_AT_ONCE):
        await deferrer.batch_defer_async(*batches[start : start + DEFER_AT_ONCE])
    return len(ids)


@queue_app.task(name=SEND_TASK, queue=QUEUE, pass_context=True, retry=DeliveryRetryStrategy())
async def send(
    context: procrastinate.JobContext, delivery_ids: list[int] | None = None, delivery_id: int | None = None
) -> None:
    """One lane: an attempt at each delivery of the batch that is due (``delivery_id``: a job of an older image)."""
    runtime = _runtime(context)
    ids = delivery_ids if delivery_ids is not None else [delivery_id] if delivery_id is not None else []
    delay = await send_batch(ids, runtime.sender, runtime.book)
    if delay is not None:
        raise RetryLater(delay)


def defer_fan_out(session: Session, alarm_ids: Sequence[int]) -> None:
    """Defer one fan-out job per alarm in the caller's (SQLAlchemy, psycopg2) transaction.

    procrastinate defers through its own connections only, so a job could not
    commit with the alarm through its public API. This calls the SQL function
    its own defer uses, ``procrastinate_defer_jobs_v1`` (versioned by name;
    the schema is ours, frozen in the revision), and is the only place that
    does. tests/test_push_workers.py runs these jobs with real worker processes.
    """
    if not alarm_ids:
        return
    jobs = [json.dumps({"alarm_id": alarm_id}) for alarm_id in alarm_ids]
    session.execute(
        text(
            "SELECT procrastinate_defer_jobs_v1(ARRAY(SELECT ROW(:queue, :task, 0, NULL, NULL, args::jsonb, NULL)"
            "::procrastinate_job_to_defer_v1 FROM unnest(CAST(:jobs AS text[])) AS args))"
        ),
        {"queue": QUEUE, "task": FAN_OUT_TASK, "jobs": jobs},
    )


def libpq_url(sqlalchemy_url: str) -> str:
    """The app's SQLAlchemy URL (postgresql+psycopg2://) as the plain libpq URL psycopg 3 takes."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class WorkerRuntime:
    """What every job of one worker process shares: the Flask app, the sender, the policy and the book."""

    def __init__(self, flask_app: Flask, sender: PushSender) -> None:
        self.flask_app = flask_app
        self.sender = sender
        self.policy = Policy.from_config(flask_app.config)
        self.batch_size: int = flask_app.config["PUSH_BATCH_SIZE"]
        self.book = DeliveryBook(self.in_session, self.policy)

    def in_session(self, fn: Callable[[Session], T]) -> T:
        with self.flask_app.app_context():
            try:
                return fn(db.session())
            finally:
                db.session.remove()


async def _recover_stalled_jobs(app: procrastinate.App, every: float) -> None:
    """Jobs of a worker that stopped heart-beating (SIGKILL, lost node) go back to the queue."""
    while True:
        try:
            for job in await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=every):
                try:
                    await app.job_manager.retry_job(job)
                    log.warning("push worker: job %s of a stalled worker queued again", job.id)
                except Exception:  # another worker retried it first
                    log.debug("stalled job %s already handled", job.id)
        except Exception:
            log.exception("push worker: looking for stalled jobs failed")
        await asyncio.sleep(every / 2)


async def run_postgresql_worker(flask_app: Flask, sender: PushSender, name: str) -> None:
    """Run one worker until SIGTERM/SIGINT; running deliveries finish (each is bounded by its deadline)."""
    config = flask_app.config
    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(config["SQLALCHEMY_DATABASE_URI"]),
        # procrastinate's own statements (fetch, finish, heartbeat) are few per batch.
        min_size=1,
        max_size=QUEUE_CONNECTIONS,
    )
    # The one procrastinate App, its connector swapped in: a second App (with_connector)
    # would register (and log) its built-in tasks again.
    with queue_app.replace_connector(connector) as app:
        await _run_worker(app, flask_app, sender, name)


async def _run_worker(app: procrastinate.App, flask_app: Flask, sender: PushSender, name: str) -> None:
    config = flask_app.config
    stalled = config["PUSH_STALLED_SECONDS"]
    async with app.open_async():
        recovery = asyncio.create_task(_recover_stalled_jobs(app, stalled))
        try:
            await app.run_worker_async(
                queues=[QUEUE],
                name=name,
                concurrency=config["PUSH_WORKER_CONCURRENCY"],
                shutdown_graceful_timeout=config["PUSH_SHUTDOWN_SECONDS"],
                additional_context={"push": WorkerRuntime(flask_app, sender)},
                update_heartbeat_interval=max(0.5, stalled / 3),
                stalled_worker_timeout=stalled,
                delete_jobs="successful",
                install_signal_handlers=True,
            )
        finally:
            recovery.cancel()
            await sender.aclose()
