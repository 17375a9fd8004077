"""How a device proves it is the device it claims to be.

Devices register themselves from the app on the phone, which cannot keep the
operator's API token secret (anyone can unpack an app). What a device does
hold is its push token, issued to it by APNs/FCM/Web Push: registration is
therefore open (it only says "this token exists"), and changing or deleting a
registration requires the push token in the ``X-Push-Token`` header. The token
travels in a header, not in the URL, because URLs end up in access logs.

The check runs before the request body is read, and an unknown device id gets
the same answer as a wrong or missing token: device ids are sequential, and a
different answer would let anyone count the devices.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from flask import request
from flask_smorest import Blueprint

from models import Device, db
from weather.auth import Security, View, guarded
from weather.errors import ApiError
from weather.schemas import MAX_PUSH_TOKEN_LENGTH, PG_INT_MAX

DEVICE_TOKEN_HEADER = "X-Push-Token"
DEVICE_SCHEME = "deviceToken"
DEVICE_SECURITY: Security = [{DEVICE_SCHEME: []}]


def check_device_token(device_id: int) -> Device:
    """The device ``device_id`` if the request carries its push token; otherwise a 401, whether or not it exists."""
    supplied = request.headers.get(DEVICE_TOKEN_HEADER, "")
    device = None
    if supplied and len(supplied) <= MAX_PUSH_TOKEN_LENGTH and 1 <= device_id <= PG_INT_MAX:
        device = db.session.get(Device, device_id)
    # Compared even for an unknown device, so both cases take the same path.
    expected = device.push_token if device is not None else ""
    if not hmac.compare_digest(supplied.encode(), expected.encode()) or device is None:
        raise ApiError(
            401,
            "unauthorized",
            f"No device with this id holds the push token given in the {DEVICE_TOKEN_HEADER} header.",
        )
    return device


def device_token_required(blp: Blueprint) -> Callable[[View], View]:
    """Run a view of ``/<device_id>/...`` only with that device's push token (weather.auth.guarded)."""
    return guarded(blp, lambda arguments: check_device_token(arguments["device_id"]), DEVICE_SECURITY)
