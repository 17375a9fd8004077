"""Deliveries as data: one row per (alarm, device), leased, sent and settled in bulk.

``enqueue_deliveries`` turns an alarm into its rows: inside the transaction
that records the alarm on SQLite, and in the alarm's fan-out job on
PostgreSQL (see weather.push.queue). ``send_batch`` is the one delivery
path every worker runs (a procrastinate job per batch on PostgreSQL, the
polling loop on SQLite): a lane of deliveries sent one after another, each
leased before its call (so two workers never send the same delivery at once),
sent under an overall deadline, then settled: sent, failed, or back to pending
with a retry time. A worker's lanes share one ``DeliveryBook``, which records
all their leases and results of a moment in one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import CursorResult, Select, Table, case, delete, exists, func, insert, literal, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session, aliased

from models import Device, MarketAlarmLog, PushDelivery, Subscription, utcnow
from weather.push.senders import ACCEPTED, REJECTED, RETRY, UNREGISTERED, Message, PushSender, SendResult
from weather.settings import FromConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


class InSession(Protocol):
    """Runs ``fn(session)`` on a database session and returns its result."""

    def __call__(self, fn: Callable[[Session], T]) -> T: ...


# The send path's statements are Core, on the tables: they run per batch and per
# round, and nothing they touch is loaded as an ORM object.
deliveries, alarms = cast(Table, PushDelivery.__table__), cast(Table, MarketAlarmLog.__table__)


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


def alarm_payload(
    alarm_id: int, market_id: int, alarm_type: str, target_date: date, title: str, message: str
) -> dict[str, Any]:
    """What a device is told about an alarm."""
    return {
        "id": alarm_id,
        "market_id": market_id,
        "alarm_type": alarm_type,
        "target_date": target_date.isoformat(),
        "title": title,
        "message": message,
    }


@dataclass(frozen=True)
class Owed:
    """A pending delivery loaded for sending: its message and what settling it needs."""

    id: int
    alarm_id: int
    device_id: int
    created_at: datetime
    message: Message


def load_owed(session: Session, ids: Sequence[int], policy: Policy) -> list[Owed]:
    """The batch's pending deliveries with their messages, in id order; commit.

    Those too old, or whose device is gone, are marked failed here, in bulk.
    """
    now = utcnow()
    pending = deliveries.c.id.in_(ids) & (deliveries.c.state == "pending")
    expired = f"expired: older than PUSH_MAX_AGE_SECONDS ({policy.max_age_seconds:g} s)"
    no_device = deliveries.c.device_id.is_(None)
    too_old = deliveries.c.created_at < now - timedelta(seconds=policy.max_age_seconds)
    session.execute(
        sql_update(deliveries)
        .where(pending, no_device | too_old)
        .values(
            state="failed",
            last_error=case((no_device, literal("device unregistered")), else_=literal(expired)),
            finished_at=now,
        )
    )
    # Columns, not entities: no identity map to fill for rows read once.
    devices = cast(Table, Device.__table__)
    device, alarm = devices.c, alarms.c
    rows = session.execute(
        select(
            deliveries.c.id,
            deliveries.c.created_at,
            deliveries.c.idempotency_key,
            deliveries.c.device_id,
            device.push_token,
            device.platform,
            alarm.id,
            alarm.market_id,
            alarm.alarm_type,
            alarm.target_date,
            alarm.title,
            alarm.message,
        )
        .join(devices, device.id == deliveries.c.device_id)
        .join(alarms, alarm.id == deliveries.c.alarm_id)
        .where(pending)
        .order_by(deliveries.c.id)
    ).all()
    session.commit()
    return [
        Owed(
            row[0],
            row[6],
            row[3],
            row[1],
            Message(row[4], row[5], row[2], alarm_payload(row[6], row[7], row[8], row[9], row[10], row[11])),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class Sent:
    """One provider call made for a leased delivery, to be recorded."""

    owed: Owed
    attempts: int  # this attempt's number
    result: SendResult


@dataclass
class Round:
    """One transaction's worth of the lanes' work: calls to record, deliveries to lease next."""

    sent: list[Sent]
    lease: list[Owed]
    leased: dict[int, int] = field(default_factory=dict)  # delivery id -> this attempt's number
    waits: dict[int, float] = field(default_factory=dict)  # delivery id -> seconds until it is due again


def record_round(session: Session, work: Round, policy: Policy) -> Round:
    """Settle the calls made and lease the next deliveries, in bulk, in one transaction; commit.

    Settling: accepted become sent (and count in ``sent_to_devices``, same
    transaction), rejected fail, retried ones get their next attempt time or
    fail for good. Leasing: a due, pending delivery gets ``next_attempt_at``
    pushed past the call's deadline (so no second worker sends it meanwhile)
    and one more attempt; one that is not due answers with its wait.
    """
    now = utcnow()
    _settle(session, work.sent, policy, now, work.waits)
    if work.lease:
        lease_until = now + timedelta(seconds=policy.timeout_seconds + LEASE_MARGIN_SECONDS)
        ids = [owed.id for owed in work.lease]
        leased = session.execute(
            sql_update(deliveries)
            .where(
                deliveries.c.id.in_(ids),
                deliveries.c.state == "pending",
                deliveries.c.next_attempt_at <= now,
                deliveries.c.device_id.is_not(None),
            )
            .values(next_attempt_at=lease_until, attempts=deliveries.c.attempts + 1)
            .returning(deliveries.c.id, deliveries.c.attempts)
        ).all()
        work.leased = {delivery_id: attempts for delivery_id, attempts in leased}
        others = [i for i in ids if i not in work.leased]
        if others:
            due = select(deliveries.c.id, deliveries.c.next_attempt_at).where(
                deliveries.c.id.in_(others), deliveries.c.state == "pending"
            )
            for delivery_id, due_at in session.execute(due):
                work.waits[delivery_id] = max(0.1, (due_at - now).total_seconds())
    session.commit()
    return work


def _settle(session: Session, sent: Sequence[Sent], policy: Policy, now: datetime, waits: dict[int, float]) -> None:
    accepted = [s.owed.id for s in sent if s.result.outcome == ACCEPTED]
    if accepted:
        sent_for = session.scalars(
            sql_update(deliveries)
            .where(deliveries.c.id.in_(accepted), deliveries.c.state == "pending")
            .values(state="sent", last_error=None, finished_at=now)
            .returning(deliveries.c.alarm_id)
        ).all()
        # Same transaction as the state change: the count never runs ahead of (nor behind) the rows.
        for alarm_id, count in sorted(Counter(sent_for).items()):
            session.execute(
                sql_update(alarms)
                .where(alarms.c.id == alarm_id)
                .values(sent_to_devices=alarms.c.sent_to_devices + count)
            )
    for call in sent:
        result, owed = call.result, call.owed
        if result.outcome == REJECTED:
            _fail(session, owed.id, result.error, now)
        elif result.outcome == UNREGISTERED:
            _fail(session, owed.id, result.error, now)
            _forget_device(session, owed.device_id)
        elif result.outcome == RETRY:
            age = (now - owed.created_at).total_seconds()
            delay = policy.backoff(call.attempts, result.retry_after)
            if call.attempts >= policy.max_attempts or age + delay > policy.max_age_seconds:
                reason = "PUSH_MAX_ATTEMPTS" if call.attempts >= policy.max_attempts else "PUSH_MAX_AGE_SECONDS"
                _fail(session, owed.id, f"gave up after {call.attempts} attempts ({reason}): {result.error}", now)
                continue
            retried = session.execute(
                sql_update(deliveries)
                .where(deliveries.c.id == owed.id, deliveries.c.state == "pending")
                .values(next_attempt_at=now + timedelta(seconds=delay), last_error=_short(result.error))
            )
            if cast(CursorResult[Any], retried).rowcount:
                waits[owed.id] = delay


def _fail(session: Session, delivery_id: int, error: str | None, now: datetime) -> None:
    session.execute(
        sql_update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.state == "pending")
        .values(state="failed", last_error=_short(error), finished_at=now)
    )


def _forget_device(session: Session, device_id: int) -> None:
    """The provider says the token is dead: forget the device (and its subscriptions).

    Explicit, not ON DELETE: SQLite enforces foreign keys only when asked to.
    """
    session.execute(sql_update(deliveries).where(deliveries.c.device_id == device_id).values(device_id=None))
    session.execute(
        delete(Subscription).where(Subscription.device_id == device_id).execution_options(synchronize_session=False)
    )
    session.execute(delete(Device).where(Device.id == device_id).execution_options(synchronize_session=False))
    log.info("push: device %s unregistered by the provider, registration removed", device_id)


def _short(error: str | None) -> str | None:
    return None if error is None else error[:300]


class DeliveryBook:
    """One worker process's bookkeeping: every lane's steps of a moment go to the database as one round.

    While one round's transaction runs, the steps that arrive meanwhile wait
    and go together in the next (group commit): the database cost per
    delivery shrinks as the send rate grows, and no lane ever has more than
    one call whose answer is not yet recorded (what a SIGKILL can send twice).
    """

    def __init__(self, in_session: InSession, policy: Policy) -> None:
        self.in_session = in_session
        self.policy = policy
        self._waiting: list[tuple[Sent | None, Owed | None, asyncio.Future[Round]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def load(self, ids: Sequence[int]) -> list[Owed]:
        return await asyncio.to_thread(self.in_session, lambda s: load_owed(s, ids, self.policy))

    async def step(self, sent: Sent | None, lease: Owed | None) -> Round:
        """Record ``sent`` and lease ``lease`` (either may be None); the round they went in."""
        future: asyncio.Future[Round] = asyncio.get_running_loop().create_future()
        self._waiting.append((sent, lease, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                steps, self._waiting = self._waiting, []
                work = Round([s for s, _, _ in steps if s], [o for _, o, _ in steps if o])
                began = time.perf_counter()
                try:
                    done = await asyncio.to_thread(
                        self.in_session, partial(record_round, work=work, policy=self.policy)
                    )
                    took = (time.perf_counter() - began) * 1000
                    log.debug("push book: %d steps recorded in one transaction, %.1f ms", len(steps), took)
                except Exception as exc:  # each lane's job fails and procrastinate retries it
                    for _, _, future in steps:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, _, future in steps:
                    if not future.done():
                        future.set_result(done)
        finally:
            self._flusher = None


async def call_provider(sender: PushSender, owed: Owed, policy: Policy) -> SendResult:
    """One provider call under the overall deadline; a broken sender costs one attempt, never the worker."""
    try:
        async with asyncio.timeout(policy.timeout_seconds):
            result = await sender.send(owed.message)
    except TimeoutError:
        result = SendResult(RETRY, f"no answer within PUSH_TIMEOUT_SECONDS ({policy.timeout_seconds:g} s)")
    except Exception as exc:  # the class name only: a message or traceback may quote the provider's URL
        result = SendResult(RETRY, f"sender error: {type(exc).__name__}")
    if result.outcome != ACCEPTED:
        log.warning("push delivery %s not accepted: %s (%s)", owed.id, result.outcome, result.error)
    return result


async def send_batch(ids: Sequence[int], sender: PushSender, book: DeliveryBook) -> float | None:
    """One lane: the batch's deliveries one after another; seconds until the rest is due, or None when settled.

    Each delivery is leased in the round that records the previous one's
    call, so a lane costs no extra transaction per delivery, and what a
    SIGKILL leaves leased goes back when its lease ends (the job is retried).
    """
    waits: list[float] = []
    sent: Sent | None = None
    for owed in [*await book.load(ids), None]:
        done = await book.step(sent, owed)
        if sent is not None and sent.owed.id in done.waits:
            waits.append(done.waits[sent.owed.id])
        sent = None
        if owed is None:
            break
        if owed.id not in done.leased:
            if owed.id in done.waits:
                waits.append(done.waits[owed.id])
            continue
        sent = Sent(owed, done.leased[owed.id], await call_provider(sender, owed, book.policy))
    return min(waits) if waits else None


async def deliver(delivery_id: int, sender: PushSender, policy: Policy, in_session: InSession) -> float | None:
    """One delivery attempt end to end (a batch of one); seconds until it should be tried again, or None.

    ``in_session(fn)`` runs ``fn(session)`` on a database session in a worker
    thread (database calls are blocking; the provider call is not).
    """
    return await send_batch([delivery_id], sender, DeliveryBook(in_session, policy))


def next_due_at(session: Session) -> datetime | None:
    """When the earliest pending delivery becomes due (the SQLite worker sleeps until then)."""
    return session.scalar(select(func.min(PushDelivery.next_attempt_at)).where(PushDelivery.state == "pending"))
