"""/api/v1/devices: devices register themselves, choose their subscriptions, and leave.

See weather/device_auth.py for why these endpoints take the device's push
token rather than the operator's API token.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Response
from sqlalchemy import delete, select

from models import Device, Market, Subscription, db, utcnow
from weather.api.blueprint import Blueprint
from weather.api.lookup import get_or_404
from weather.device_auth import device_token_required
from weather.errors import invalid
from weather.rate_limits import per_address, per_device
from weather.request_limits import body_limit
from weather.schemas import DeviceRegisterSchema, DeviceSchema, SubscriptionsReplaceSchema
from weather.upsert import insert_for

blp = Blueprint("devices", __name__, url_prefix="/api/v1/devices", description="Devices that receive push alarms")

# Anyone may register: a registration body is tiny, so a big one is refused unread.
REGISTRATION_MAX_BYTES = 16 * 1024
# MAX_SUBSCRIPTIONS subscriptions of every alarm type, with room for whitespace.
SUBSCRIPTIONS_MAX_BYTES = 512 * 1024


def device_view(device: Device) -> dict[str, Any]:
    """A device with its subscriptions grouped per market, in the order the device gave them
    (rows are inserted in that order, so their ids keep it)."""
    by_market: dict[int, list[str]] = defaultdict(list)
    for sub in sorted(device.subscriptions, key=lambda s: s.id):
        by_market[sub.market_id].append(sub.alarm_type)
    return {
        "id": device.id,
        "platform": device.platform,
        "created_at": device.created_at,
        "last_seen_at": device.last_seen_at,
        "subscriptions": [{"market_id": m, "alarm_types": types} for m, types in by_market.items()],
    }


@blp.post("")
@per_address("RATE_LIMIT_REGISTRATIONS")
@body_limit(REGISTRATION_MAX_BYTES)
@blp.arguments(DeviceRegisterSchema)
@blp.response(200, DeviceSchema, description="Known push token: the registration was refreshed")
@blp.alt_response(201, schema=DeviceSchema, description="New push token: the device was registered")
def register_device(data: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Register a device by its push token, or refresh it (idempotent: same token, same device)."""
    now = utcnow()
    # One statement, so two registrations of the same token racing end in one row.
    stmt = insert_for(db.session(), Device).values(
        push_token=data["push_token"], platform=data["platform"], created_at=now, last_seen_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["push_token"], set_={"platform": stmt.excluded.platform, "last_seen_at": now}
    ).returning(Device.id)
    device_id = db.session.scalar(stmt)
    db.session.commit()
    device = get_or_404(Device, device_id, "device")
    created = device.created_at == device.last_seen_at
    return device_view(device), 201 if created else 200


@blp.put("/<int:device_id>/subscriptions")
@per_address("RATE_LIMIT_DEVICE_CHANGES_PER_ADDRESS")  # every attempt, wrong tokens included
@device_token_required(blp)
@per_device("RATE_LIMIT_DEVICE_CHANGES_PER_DEVICE")  # only the device's own: a stranger cannot use it up
@body_limit(SUBSCRIPTIONS_MAX_BYTES)
@blp.arguments(SubscriptionsReplaceSchema)
@blp.response(200, DeviceSchema)
def replace_subscriptions(data: dict[str, Any], device_id: int) -> dict[str, Any]:
    """Replace all of a device's subscriptions (markets x alarm types); an empty list unsubscribes."""
    device = get_or_404(Device, device_id, "device")  # known: device_token_required found it (the session remembers it)
    # Duplicates dropped, the order kept: the answer lists them as the device sent them.
    wanted = list(dict.fromkeys((s["market_id"], t) for s in data["subscriptions"] for t in s["alarm_types"]))
    market_ids = {m for m, _ in wanted}
    known = set(db.session.scalars(select(Market.id).where(Market.id.in_(market_ids))))
    for index, sub in enumerate(data["subscriptions"]):
        if sub["market_id"] not in known:
            raise invalid(f"subscriptions.{index}.market_id", f"market {sub['market_id']} does not exist")
    db.session.execute(delete(Subscription).where(Subscription.device_id == device.id))
    db.session.add_all(Subscription(device_id=device.id, market_id=m, alarm_type=t) for m, t in wanted)
    device.last_seen_at = utcnow()
    db.session.commit()
    db.session.refresh(device)
    return device_view(device)


@blp.delete("/<int:device_id>")
@per_address("RATE_LIMIT_DEVICE_CHANGES_PER_ADDRESS")  # every attempt, wrong tokens included
@device_token_required(blp)
@per_device("RATE_LIMIT_DEVICE_CHANGES_PER_DEVICE")  # only the device's own: a stranger cannot use it up
@blp.response(204)
def unregister_device(device_id: int) -> Response:
    """Forget a device and its subscriptions."""
    device = get_or_404(Device, device_id, "device")  # known: device_token_required found it
    db.session.delete(device)
    db.session.commit()
    return Response(status=204)
