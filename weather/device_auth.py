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

import functools
import hmac
from collections.abc import Callable
from typing import Any

from flask import request

from models import Device, db
from weather.errors import ApiError
from weather.schemas import MAX_PUSH_TOKEN_LENGTH, PG_INT_MAX

DEVICE_TOKEN_HEADER = "X-Push-Token"
DEVICE_SCHEME = "deviceToken"
DEVICE_SECURITY: list[dict[str, list[str]]] = [{DEVICE_SCHEME: []}]


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


def device_token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a view of ``/<device_id>/...`` so it runs only with that device's push token.

    Apply it directly under the route decorator (above ``arguments``), so the
    token is checked before the body is parsed.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_device_token(kwargs["device_id"])
        return view(*args, **kwargs)

    return wrapper
