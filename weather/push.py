"""Push delivery: a small sender interface, a recording sender and a webhook sender.

Delivery happens after the alarm log rows are committed, so a failed or slow
push can cost a notification, never the record of the alarm.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import Device, MarketAlarmLog, Subscription

log = logging.getLogger(__name__)

EXTENSION = "weather.push_sender"


@dataclass(frozen=True)
class Delivery:
    """One alarm for one device."""

    push_token: str
    platform: str
    alarm: dict[str, Any]


class PushSender(Protocol):
    """Delivers one push; returns True when the push provider accepted it."""

    def send(self, delivery: Delivery) -> bool: ...


class RecordingSender:
    """The default sender: keeps deliveries in memory and logs one line each (no provider configured)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.deliveries: list[Delivery] = []

    def send(self, delivery: Delivery) -> bool:
        """Record ``delivery``; always succeeds."""
        with self._lock:
            self.deliveries.append(delivery)
        # The push token is a credential of the device: log only its tail.
        log.info(
            "push recorded: alarm %s %s to %s device …%s",
            delivery.alarm["id"],
            delivery.alarm["alarm_type"],
            delivery.platform,
            delivery.push_token[-6:],
        )
        return True


class WebhookSender:
    """POSTs each delivery as JSON to a URL, with a timeout and bounded retries.

    Retried: connection errors, timeouts, 408, 429 and 5xx. Other 4xx answers
    mean the request itself is wrong, so retrying cannot help.
    """

    def __init__(self, url: str, *, timeout: float = 3.0, retries: int = 2, backoff: float = 0.2) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def send(self, delivery: Delivery) -> bool:
        """Deliver ``delivery``; True once the webhook answers 2xx."""
        body = json.dumps(
            {"push_token": delivery.push_token, "platform": delivery.platform, "alarm": delivery.alarm},
            ensure_ascii=False,
        ).encode()
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 2.0))
            request = urllib.request.Request(
                self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                    return True
            except urllib.error.HTTPError as exc:
                # The URL may hold a secret: log the status, not the address.
                log.warning("push webhook answered %s (attempt %d/%d)", exc.code, attempt + 1, self.retries + 1)
                if exc.code not in (408, 429) and exc.code < 500:
                    return False
            except (OSError, TimeoutError) as exc:  # URLError, connection refused, timeout
                name = type(exc).__name__
                log.warning("push webhook failed: %s (attempt %d/%d)", name, attempt + 1, self.retries + 1)
        return False


def sender_from_config(config: Mapping[str, Any]) -> PushSender:
    """The webhook sender when PUSH_WEBHOOK_URL is set, else the recording sender."""
    if config.get("PUSH_WEBHOOK_URL"):
        return WebhookSender(
            config["PUSH_WEBHOOK_URL"], timeout=config["PUSH_TIMEOUT_SECONDS"], retries=config["PUSH_RETRIES"]
        )
    return RecordingSender()


def init_app(app: Flask) -> None:
    """Attach the configured sender to the app (tests replace ``app.extensions[EXTENSION]``)."""
    app.extensions[EXTENSION] = sender_from_config(app.config)


def current_sender() -> PushSender:
    """The sender of the running app."""
    return current_app.extensions[EXTENSION]


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


def push_alarm(session: Session, sender: PushSender, alarm: MarketAlarmLog, deadline: float | None = None) -> int:
    """Push ``alarm`` to every subscribed device, store and return how many accepted it.

    Never raises for a delivery failure: the alarm is already recorded, and the
    ingest that raised it must still succeed. Past ``deadline`` (``time.monotonic()``)
    the remaining devices are skipped: a hanging push provider costs
    notifications, never the ingest's answer (nor a worker killed by gunicorn's timeout).
    """
    devices = session.execute(
        select(Device.push_token, Device.platform)
        .join(Subscription, Subscription.device_id == Device.id)
        .where(Subscription.market_id == alarm.market_id, Subscription.alarm_type == alarm.alarm_type)
        .order_by(Device.id)
    ).all()
    payload = alarm_payload(alarm)
    sent = 0
    for index, (push_token, platform) in enumerate(devices):
        if deadline is not None and time.monotonic() >= deadline:
            log.warning(
                "push budget spent: alarm %s %s not pushed to %d of %d devices (PUSH_BUDGET_SECONDS)",
                alarm.id,
                alarm.alarm_type,
                len(devices) - index,
                len(devices),
            )
            break
        try:
            sent += bool(sender.send(Delivery(push_token, platform, payload)))
        except Exception:  # a broken sender must not cost the other devices their push
            log.exception("push sender raised for alarm %s", alarm.id)
    session.execute(update(MarketAlarmLog).where(MarketAlarmLog.id == alarm.id).values(sent_to_devices=sent))
    session.commit()
    return sent
