"""``flask push status``: the push queue at a glance, read from the tables only.

Deliveries come from ``push_delivery`` (pending and failed per alarm). On
PostgreSQL the queue is procrastinate's ``procrastinate_jobs`` table: jobs
waiting, running and failed, and the age of the oldest waiting one. An alarm
whose fan-out job has not run yet has no delivery rows; its deliveries are
counted from the subscriptions that job will expand (the very pairs
``owed_deliveries`` selects), so an alarm shows what it owes before any worker
runs. SQLite has no queue: the rows are the queue.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from models import Market, MarketAlarmLog, PushDelivery, Subscription, utcnow
from weather.push.deliveries import owed_deliveries

# At most this many alarms are listed (most pending first); the rest are counted.
MAX_LISTED = 20


@dataclass
class AlarmDeliveries:
    """What one alarm still owes, or failed to deliver."""

    alarm_id: int
    label: str
    pending: int = 0
    failed: int = 0
    awaiting_fan_out: int = 0  # devices its fan-out job will add (PostgreSQL, before a worker runs it)


@dataclass
class QueueStatus:
    jobs: dict[str, int] | None  # queue jobs by state (None: no queue, SQLite)
    oldest_waiting: datetime | None
    alarms: list[AlarmDeliveries] = field(default_factory=list)


def _fan_outs_waiting(session: Session) -> list[int]:
    rows = session.execute(
        text(
            "SELECT DISTINCT (args->>'alarm_id')::bigint FROM procrastinate_jobs "
            "WHERE queue_name = 'push' AND task_name = 'push.fan_out' AND status IN ('todo', 'doing')"
        )
    )
    return [row[0] for row in rows]


def _jobs(session: Session) -> tuple[dict[str, int], datetime | None]:
    counts = {"waiting": 0, "running": 0, "failed": 0}
    names = {"todo": "waiting", "doing": "running", "failed": "failed"}
    rows = session.execute(
        text("SELECT status::text, count(*) FROM procrastinate_jobs WHERE queue_name = 'push' GROUP BY status")
    )
    for status, count in rows:
        if status in names:
            counts[names[status]] = count
    oldest = session.scalar(
        text(
            "SELECT min(e.at) FROM procrastinate_jobs j JOIN procrastinate_events e "
            "ON e.job_id = j.id AND e.type = 'deferred' WHERE j.queue_name = 'push' AND j.status = 'todo'"
        )
    )
    return counts, oldest


def read_status(session: Session) -> QueueStatus:
    """The queue and the deliveries per alarm, as they are now."""
    by_alarm: dict[int, dict[str, int]] = defaultdict(lambda: {"pending": 0, "failed": 0, "awaiting_fan_out": 0})
    rows = session.execute(
        select(PushDelivery.alarm_id, PushDelivery.state, func.count())
        .where(PushDelivery.state.in_(("pending", "failed")))
        .group_by(PushDelivery.alarm_id, PushDelivery.state)
    )
    for alarm_id, state, count in rows:
        by_alarm[alarm_id][state] = count
    jobs, oldest = None, None
    if session.get_bind().dialect.name == "postgresql":
        jobs, oldest = _jobs(session)
        waiting = _fan_outs_waiting(session)
        if waiting:
            owed = owed_deliveries(waiting, MarketAlarmLog.id, func.count(Subscription.device_id))
            for alarm_id, count in session.execute(owed.group_by(MarketAlarmLog.id)):
                by_alarm[alarm_id]["awaiting_fan_out"] = count
    labels = dict(
        session.execute(
            select(MarketAlarmLog.id, Market.name + " " + MarketAlarmLog.alarm_type)
            .join(Market, Market.id == MarketAlarmLog.market_id)
            .where(MarketAlarmLog.id.in_(list(by_alarm)))
        ).all()
    )
    alarms = [
        AlarmDeliveries(alarm_id, labels.get(alarm_id, "?"), **counts)
        for alarm_id, counts in by_alarm.items()
        if any(counts.values())
    ]
    alarms.sort(key=lambda a: (-(a.pending + a.awaiting_fan_out), -a.failed, a.alarm_id))
    return QueueStatus(jobs, oldest, alarms)


def render(status: QueueStatus) -> list[str]:
    """The lines of ``flask push status``; the last one sums it up."""
    lines = []
    for alarm in status.alarms[:MAX_LISTED]:
        waiting = f" ({alarm.awaiting_fan_out} awaiting fan-out)" if alarm.awaiting_fan_out else ""
        lines.append(
            f"alarm {alarm.alarm_id} ({alarm.label}): {alarm.pending + alarm.awaiting_fan_out} pending{waiting}, "
            f"{alarm.failed} failed"
        )
    if len(status.alarms) > MAX_LISTED:
        lines.append(f"... and {len(status.alarms) - MAX_LISTED} more alarms")
    pending = sum(a.pending + a.awaiting_fan_out for a in status.alarms)
    failed = sum(a.failed for a in status.alarms)
    summary = f"push status: {pending} deliveries pending, {failed} failed"
    if status.jobs is None:
        lines.append(f"{summary}; no queue on SQLite (flask push worker polls push_delivery)")
        return lines
    jobs = status.jobs
    age = "none waiting"
    if status.oldest_waiting is not None:
        age = f"oldest waiting {(utcnow() - status.oldest_waiting).total_seconds():.0f} s"
    lines.append(
        f"{summary}; queue jobs: {jobs['waiting']} waiting, {jobs['running']} running, {jobs['failed']} failed; {age}"
    )
    return lines
