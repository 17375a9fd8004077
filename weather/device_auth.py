"""How a device proves it is the device it claims to be.

Devices register themselves from the app on the phone, which cannot keep the
operator's API token secret (anyone can unpack an app). What a device does
hold is its push token, issued to it by APNs/FCM/Web Push: registration is
therefore open (it only says "this token exists"), and changing or deleting a
registration requires the push token in the ``X-Push-Token`` header. The token
travels in a header, not in the URL, because URLs end up in access logs.
"""

from __future__ import annotations

import hmac

from flask import request

from models import Device
from weather.errors import ApiError

DEVICE_TOKEN_HEADER = "X-Push-Token"
DEVICE_SCHEME = "deviceToken"
DEVICE_SECURITY: list[dict[str, list[str]]] = [{DEVICE_SCHEME: []}]


def check_device_token(device: Device) -> None:
    """Raise a 401 unless the request carries ``device``'s push token."""
    supplied = request.headers.get(DEVICE_TOKEN_HEADER, "")
    if not hmac.compare_digest(supplied.encode(), device.push_token.encode()):
        raise ApiError(401, "unauthorized", f"The device's push token is required in the {DEVICE_TOKEN_HEADER} header.")
