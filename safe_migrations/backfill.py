"""Batched backfills for data migrations: short transactions, progress, resumable.

In a revision, use ``safe_migrations.operations.batched_update``, which runs
this outside the revision's transaction so each batch commits on its own::

    from safe_migrations.operations import batched_update

    def upgrade():
        batched_update("market_alarm_log", "sent_to_devices = 0", pending="sent_to_devices IS NULL")

Each batch updates one primary-key range, so it holds row locks only on that
range and only for one short statement. The range adapts to a time budget
(``target_batch_seconds``): a writer that needs a row of the batch waits at
most about that long, whatever the row width or the machine. ``pending`` must
describe rows that still need the update: an interrupted backfill, run again,
starts at the first pending key and skips what is done.
"""

from __future__ import annotations

import io
import sys
import time

import click
from sqlalchemy import text
from sqlalchemy.engine import Connection

from safe_migrations.log import log


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def backfill(
    connection: Connection,
    table: str,
    assignments: str,
    *,
    pending: str,
    key: str = "id",
    batch_size: int = 1_000,
    target_batch_seconds: float | None = 0.05,
    pause: float = 0.0,
    progress: bool | None = None,
) -> int:
    """Run ``UPDATE table SET assignments WHERE pending`` in key-range batches; return rows updated.

    ``connection`` must be in autocommit mode (an Alembic ``autocommit_block``
    or a connection with ``isolation_level="AUTOCOMMIT"``), so that every batch
    is committed as soon as it is done. ``batch_size`` is the first range's
    width; with ``target_batch_seconds`` set, each next range is resized so a
    batch takes about that long (``None`` keeps it fixed). ``pause`` seconds
    between batches give replicas and vacuum room to breathe.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    table, key = _identifier(table), _identifier(key)
    bounds = connection.execute(text(f"SELECT min({key}), max({key}) FROM {table} WHERE {pending}")).one()
    if bounds[0] is None:
        log.info("backfill %s: nothing pending", table)
        return 0
    low, high = bounds
    update = text(f"UPDATE {table} SET {assignments} WHERE {key} >= :low AND {key} < :high AND ({pending})")
    total, started, start, width = 0, time.monotonic(), low, batch_size
    show = sys.stderr.isatty() if progress is None else progress
    with click.progressbar(
        length=high - low + 1,
        label=f"database migration: backfill {table}",
        file=sys.stderr if show else io.StringIO(),  # nobody watches: swallowed
    ) as bar:
        while start <= high:
            batch_started = time.monotonic()
            total += connection.execute(update, {"low": start, "high": start + width}).rowcount
            elapsed = time.monotonic() - batch_started
            bar.update(min(width, high + 1 - start))
            start += width
            if target_batch_seconds:
                # Grow or shrink the next range toward the time budget, at most 2x per step.
                width = int(min(max(width * target_batch_seconds / max(elapsed, 1e-4), width / 2), width * 2)) or 1
            rate = total / max(time.monotonic() - started, 1e-6)
            bar.label = f"database migration: backfill {table} ({total} rows, {rate:,.0f} rows/s)"
            if pause:
                time.sleep(pause)
    log.info("backfill %s: %d rows in %.1fs", table, total, time.monotonic() - started)
    return total
