"""Deliveries as data: one row per (alarm, device), claimed, sent and settled one at a time.

``enqueue_deliveries`` turns an alarm into its rows: inside the transaction
that records the alarm on SQLite, and in the alarm's fan-out job on
PostgreSQL (see weather.push.queue). ``deliver`` is the one
delivery step every worker runs (the procrastinate task on PostgreSQL, the
polling loop on SQLite): claim the row with a lease (so two workers never send
the same delivery at once), make one provider call under an overall deadline,
then settle the row: sent, failed, or back to pending with a retry time.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import CursorResult, Select, delete, exists, func, insert, literal, select
from sqlalchemy import update as _orm_update
from sqlalchemy.orm import Session, aliased

from models import Device, MarketAlarmLog, PushDelivery, Subscription, utcnow
from weather.push.senders import ACCEPTED, REJECTED, RETRY, UNREGISTERED, Message, PushSender, SendResult
from weather.settings import FromConfig
from weather.times import as_utc

log = logging.getLogger(__name__)
T = TypeVar("T")


class InSession(Protocol):
    """Runs ``fn(session)`` on a database session and returns its result."""

    def __call__(self, fn: Callable[[Session], T]) -> T: ...


def update(entity: Any) -> Any:
    """UPDATE without SQLAlchemy matching the WHERE against loaded objects in Python (naive SQLite datetimes)."""
    return _orm_update(entity).execution_options(synchronize_session=False)


# A claimed delivery is leased for the call's deadline plus this margin: long
# enough that no second worker takes it while the first still sends it.
LEASE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class Policy(FromConfig):
    """When to give up and how long to wait: PUSH_* settings."""

    CONFIG_PREFIX = "PUSH_"

    timeout_seconds: float
    max_attempts: int
    max_age_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float

    def backoff(self, attempts: int, retry_after: float | None) -> float:
        """Exponential back-off with full jitter, never sooner than the provider's Retry-After."""
        ceiling = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** max(attempts - 1, 0))
        delay = random.uniform(ceiling / 2, ceiling)
        return max(delay, retry_after or 0.0)


def owed_deliveries(alarm_ids: Sequence[int], *columns: Any) -> Select[Any]:
    """``columns`` of each (alarm, subscribed device) pair that has no delivery row yet.

    What a fan-out creates; ``flask push status`` counts the same pairs for the
    alarms whose fan-out job has not run.
    """
    alarm, sub, existing = MarketAlarmLog, Subscription, aliased(PushDelivery)
    return (
        select(*columns)
        .select_from(alarm)
        .join(sub, (sub.market_id == alarm.market_id) & (sub.alarm_type == alarm.alarm_type))
        .where(alarm.id.in_(alarm_ids))
        .where(~exists().where(existing.alarm_id == alarm.id, existing.device_id == sub.device_id))
    )


def enqueue_deliveries(session: Session, alarm_ids: Sequence[int]) -> int:
    """One pending delivery per device subscribed to each alarm's market and type, in one statement.

    Idempotent: a device that already has its delivery of an alarm gets no
    second one (a fan-out job run twice adds nothing). Runs in the caller's
    transaction. Returns how many deliveries it created.
    """
    if not alarm_ids:
        return 0
    alarm, sub = MarketAlarmLog, Subscription
    key = literal("alarm-") + func.cast(alarm.id, PushDelivery.idempotency_key.type) + literal("-device-")
    owed = owed_deliveries(
        alarm_ids,
        alarm.id,
        sub.device_id,
        key + func.cast(sub.device_id, PushDelivery.idempotency_key.type),
        alarm.created_at,  # PUSH_MAX_AGE_SECONDS counts from the alarm
        literal(utcnow(), PushDelivery.next_attempt_at.type),
    )
    columns = ["alarm_id", "device_id", "idempotency_key", "created_at", "next_attempt_at"]
    result = cast(CursorResult[Any], session.execute(insert(PushDelivery).from_select(columns, owed)))
    return result.rowcount or 0


def delivery_counts(session: Session, alarm_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Pending and failed deliveries per alarm (sent ones are ``sent_to_devices``)."""
    counts: dict[int, dict[str, int]] = {i: {"pending": 0, "failed": 0} for i in alarm_ids}
    if not alarm_ids:
        return counts
    rows = session.execute(
        select(PushDelivery.alarm_id, PushDelivery.state, func.count())
        .where(PushDelivery.alarm_id.in_(alarm_ids), PushDelivery.state.in_(("pending", "failed")))
        .group_by(PushDelivery.alarm_id, PushDelivery.state)
    )
    for alarm_id, state, count in rows:
        counts[alarm_id][state] = count
    return counts


def due_deliveries(session: Session, limit: int) -> list[int]:
    """Pending deliveries whose time has come, oldest first (the SQLite worker's queue)."""
    query = (
        select(PushDelivery.id)
        .where(PushDelivery.state == "pending", PushDelivery.next_attempt_at <= utcnow())
        .order_by(PushDelivery.next_attempt_at, PushDelivery.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def pending_for_alarm(session: Session, alarm_id: int) -> list[int]:
    """An alarm's pending deliveries (what its fan-out job turns into send jobs)."""
    query = select(PushDelivery.id).where(PushDelivery.alarm_id == alarm_id, PushDelivery.state == "pending")
    return list(session.scalars(query.order_by(PushDelivery.id)))


def alarm_payload(alarm: MarketAlarmLog) -> dict[str, Any]:
    """What a device is told about an alarm."""
    return {
        "id": alarm.id,
        "market_id": alarm.market_id,
        "alarm_type": alarm.alarm_type,
        "target_date": alarm.target_date.isoformat(),
        "title": alarm.title,
        "message": alarm.message,
    }


@dataclass(frozen=True)
class Claim:
    """What ``claim`` found: a message to send, a delivery to leave alone, or one to retry later."""

    message: Message | None = None
    wait: float | None = None  # leased by another worker: try again after this many seconds


def claim(session: Session, delivery_id: int, policy: Policy) -> Claim:
    """Lease a due, pending delivery to this worker and build its message; commit.

    A delivery that is sent, failed, gone, or too old ends here (too old or
    without a device: marked failed). One that another worker holds answers
    with the time its lease ends.
    """
    now = utcnow()
    row = session.get(PushDelivery, delivery_id)
    if row is None or row.state != "pending":
        return Claim()
    if now - as_utc(row.created_at) > timedelta(seconds=policy.max_age_seconds):
        _finish(
            session, delivery_id, "failed", f"expired: older than PUSH_MAX_AGE_SECONDS ({policy.max_age_seconds:g} s)"
        )
        return Claim()
    if row.device_id is None:
        _finish(session, delivery_id, "failed", "device unregistered")
        return Claim()
    lease_until = now + timedelta(seconds=policy.timeout_seconds + LEASE_MARGIN_SECONDS)
    lease = (
        update(PushDelivery)
        .where(PushDelivery.id == delivery_id, PushDelivery.state == "pending", PushDelivery.next_attempt_at <= now)
        .values(next_attempt_at=lease_until, attempts=PushDelivery.attempts + 1)
    )
    claimed = cast(CursorResult[Any], session.execute(lease)).rowcount
    if not claimed:
        session.rollback()
        current = session.get(PushDelivery, delivery_id)
        if current is None or current.state != "pending":
            return Claim()
        return Claim(wait=max(0.1, (as_utc(current.next_attempt_at) - now).total_seconds()))
    device = session.get(Device, row.device_id)
    alarm = session.get(MarketAlarmLog, row.alarm_id)
    if device is None or alarm is None:  # unregistered meanwhile
        _finish(session, delivery_id, "failed", "device unregistered")
        return Claim()
    message = Message(device.push_token, device.platform, row.idempotency_key, alarm_payload(alarm))
    session.commit()
    return Claim(message=message)


def settle(session: Session, delivery_id: int, result: SendResult, policy: Policy) -> float | None:
    """Record one call's result; commit. Returns seconds until the next attempt, or None when settled."""
    row = session.get(PushDelivery, delivery_id)
    if row is None or row.state != "pending":
        return None
    if result.outcome == ACCEPTED:
        _finish(session, delivery_id, "sent", None)
        return None
    if result.outcome in (REJECTED, UNREGISTERED):
        device_id = row.device_id
        _finish(session, delivery_id, "failed", result.error, commit=result.outcome == REJECTED)
        if result.outcome == UNREGISTERED and device_id is not None:
            # The provider says the token is dead: forget the device (and its subscriptions).
            # Explicit, not ON DELETE: SQLite enforces foreign keys only when asked to.
            session.execute(update(PushDelivery).where(PushDelivery.device_id == device_id).values(device_id=None))
            session.execute(
                delete(Subscription)
                .where(Subscription.device_id == device_id)
                .execution_options(synchronize_session=False)
            )
            session.execute(delete(Device).where(Device.id == device_id).execution_options(synchronize_session=False))
            session.commit()
            log.info("push: device %s unregistered by the provider, registration removed", device_id)
        return None
    age = (utcnow() - as_utc(row.created_at)).total_seconds()
    delay = policy.backoff(row.attempts, result.retry_after)
    if row.attempts >= policy.max_attempts or age + delay > policy.max_age_seconds:
        reason = "PUSH_MAX_ATTEMPTS" if row.attempts >= policy.max_attempts else "PUSH_MAX_AGE_SECONDS"
        _finish(session, delivery_id, "failed", f"gave up after {row.attempts} attempts ({reason}): {result.error}")
        return None
    session.execute(
        update(PushDelivery)
        .where(PushDelivery.id == delivery_id)
        .values(next_attempt_at=utcnow() + timedelta(seconds=delay), last_error=_short(result.error))
    )
    session.commit()
    return delay


def _finish(session: Session, delivery_id: int, state: str, error: str | None, *, commit: bool = True) -> None:
    changed = session.execute(
        update(PushDelivery)
        .where(PushDelivery.id == delivery_id, PushDelivery.state == "pending")
        .values(state=state, last_error=_short(error), finished_at=utcnow())
        .returning(PushDelivery.alarm_id)
    ).scalar()
    if changed is not None and state == "sent":
        # Same transaction as the state change: the count never runs ahead of (nor behind) the rows.
        session.execute(
            update(MarketAlarmLog)
            .where(MarketAlarmLog.id == changed)
            .values(sent_to_devices=MarketAlarmLog.sent_to_devices + 1)
        )
    if commit:
        session.commit()


def _short(error: str | None) -> str | None:
    return None if error is None else error[:300]


async def deliver(
    delivery_id: int,
    sender: PushSender,
    policy: Policy,
    in_session: InSession,
) -> float | None:
    """One delivery attempt end to end; returns seconds until it should be tried again, or None.

    ``in_session(fn)`` runs ``fn(session)`` on a database session in a worker
    thread (database calls are blocking; the provider call is not).
    """
    claimed = await asyncio.to_thread(in_session, lambda s: claim(s, delivery_id, policy))
    if claimed.message is None:
        return claimed.wait
    try:
        async with asyncio.timeout(policy.timeout_seconds):
            result = await sender.send(claimed.message)
    except TimeoutError:
        result = SendResult(RETRY, f"no answer within PUSH_TIMEOUT_SECONDS ({policy.timeout_seconds:g} s)")
    except Exception as exc:  # a broken sender must cost one attempt, never the worker
        log.exception("push sender raised for delivery %s", delivery_id)
        result = SendResult(RETRY, f"sender error: {type(exc).__name__}")
    if result.outcome != ACCEPTED:
        log.warning("push delivery %s not accepted: %s (%s)", delivery_id, result.outcome, result.error)
    return await asyncio.to_thread(in_session, lambda s: settle(s, delivery_id, result, policy))


def next_due_at(session: Session) -> datetime | None:
    """When the earliest pending delivery becomes due (the SQLite worker sleeps until then)."""
    return session.scalar(select(func.min(PushDelivery.next_attempt_at)).where(PushDelivery.state == "pending"))
