"""``flask push worker``: run delivery workers as their own processes.

On PostgreSQL each process is a procrastinate worker (see weather.push.queue);
run as many processes (pods) as throughput needs. On SQLite, the embedded
development database, one process polls push_delivery itself: the same
``deliver`` step, the same policy, no queue server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Mapping
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from models import db, utcnow
from safe_migrations.urls import is_postgresql
from weather.log_safety import mask_url
from weather.push.deliveries import due_deliveries, next_due_at, send_batch
from weather.push.senders import PushSender, sender_from_config

log = logging.getLogger(__name__)

push_cli = AppGroup("push", help="Push delivery: workers and the queue's status.")


@push_cli.command("worker")
@click.option("--name", default=None, help="Worker name in logs and in procrastinate (default: host-pid).")
def worker_command(name: str | None) -> None:
    """Deliver pending pushes until SIGTERM (running deliveries finish first)."""
    flask_app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    name = name or f"{socket.gethostname()}-{os.getpid()}"
    sender = sender_from_config(flask_app.config)
    on_postgresql = is_postgresql(flask_app.config["SQLALCHEMY_DATABASE_URI"])
    log.info(
        "push worker %s starting: provider %s, concurrency %d, batches of %d, %s",
        name,
        provider_description(flask_app.config),
        flask_app.config["PUSH_WORKER_CONCURRENCY"],
        flask_app.config["PUSH_BATCH_SIZE"],
        "procrastinate queue" if on_postgresql else "polling push_delivery (SQLite)",
    )
    if on_postgresql:
        from weather.push.queue import run_postgresql_worker

        asyncio.run(run_postgresql_worker(flask_app, sender, name))
    else:
        asyncio.run(run_polling_worker(flask_app, sender))
    log.info("push worker %s stopped", name)


def provider_description(config: Mapping[str, Any]) -> str:
    """The provider and where it is, for the log: a webhook URL masked (it may carry a secret)."""
    provider = config["PUSH_PROVIDER"]
    if provider == "webhook":
        return f"webhook {mask_url(config['PUSH_WEBHOOK_URL'])}"
    if provider == "fcm":
        return f"fcm {mask_url(config['FCM_ENDPOINT'])}"
    return provider


async def run_polling_worker(flask_app: Flask, sender: PushSender, *, idle_seconds: float = 1.0) -> None:
    """SQLite: deliver due rows, up to PUSH_WORKER_CONCURRENCY at once, until SIGTERM/SIGINT."""
    from weather.push.queue import WorkerRuntime

    runtime = WorkerRuntime(flask_app, sender)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    concurrency = flask_app.config["PUSH_WORKER_CONCURRENCY"]
    try:
        while not stop.is_set():
            ids = await asyncio.to_thread(runtime.in_session, lambda s: due_deliveries(s, concurrency))
            if ids:
                # The batch finishes even after SIGTERM: every call is bounded by PUSH_TIMEOUT_SECONDS.
                await asyncio.gather(*(send_batch([i], sender, runtime.book) for i in ids))
                continue
            due = await asyncio.to_thread(runtime.in_session, next_due_at)
            wait = idle_seconds
            if due is not None:
                wait = min(idle_seconds, max(0.05, (due - utcnow()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
    finally:
        await sender.aclose()


@push_cli.command("status")
def status_command() -> None:
    """The push queue at a glance: deliveries pending and failed per alarm, queue jobs, the oldest wait.

    Read-only; works on SQLite (no queue: the delivery rows) and PostgreSQL.
    """
    from weather.push.status import read_status, render

    for line in render(read_status(db.session())):
        click.echo(line)


def init_app(app: Flask) -> None:
    """Register ``flask push``."""
    app.cli.add_command(push_cli)
