"""Push senders: FCM HTTP v1, a webhook, and a recording sender for development.

A sender makes one provider call and says what became of it (``SendResult``);
it never sleeps, never retries and never touches the database: retrying is the
worker's job (``weather.push.deliveries``), so every sender gets the same policy.
Every call is bounded as a whole by the caller (``asyncio.timeout``), redirects
are not followed (a 3xx is a failure: a redirected POST would arrive as a
body-less GET) and TLS certificates are verified.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from models import utcnow
from weather.config import ConfigError

log = logging.getLogger(__name__)

ACCEPTED, RETRY, REJECTED, UNREGISTERED = "accepted", "retry", "rejected", "unregistered"
# Worth another try: the request may be fine and the provider busy or down.
RETRYABLE_STATUS = frozenset({408, 429})


@dataclass(frozen=True)
class Message:
    """One alarm for one device, as a sender needs it."""

    push_token: str
    platform: str
    idempotency_key: str
    alarm: dict[str, Any]


@dataclass(frozen=True)
class SendResult:
    """What became of one provider call; ``error`` is a short text safe to store and log."""

    outcome: str
    error: str | None = None
    retry_after: float | None = None


class PushSender(Protocol):
    """Makes one provider call for one message."""

    async def send(self, message: Message) -> SendResult: ...

    async def aclose(self) -> None: ...


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def classify(response: httpx.Response) -> SendResult:
    """2xx accepted; 408, 429 and 5xx worth a retry (Retry-After kept); 3xx and other 4xx rejected."""
    status = response.status_code
    if 200 <= status < 300:
        return SendResult(ACCEPTED)
    if status in RETRYABLE_STATUS or status >= 500:
        return SendResult(RETRY, f"HTTP {status}", retry_after_seconds(response.headers.get("Retry-After")))
    if 300 <= status < 400:
        return SendResult(REJECTED, f"HTTP {status}: redirects are not followed")
    return SendResult(REJECTED, f"HTTP {status}")


def transport_error(exc: httpx.HTTPError) -> SendResult:
    """Timeouts and connection errors are worth a retry; the URL (it may hold a secret) is never kept."""
    return SendResult(RETRY, type(exc).__name__)


def http_client(timeout: float) -> httpx.AsyncClient:
    """The one HTTP client policy: TLS verified, no redirects, per-phase timeouts inside the overall deadline."""
    return httpx.AsyncClient(verify=True, follow_redirects=False, timeout=httpx.Timeout(timeout))


@dataclass
class RecordingSender:
    """Development and tests: accepts everything, keeps it in memory and logs one line (token tail only)."""

    messages: list[Message] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def send(self, message: Message) -> SendResult:
        with self._lock:
            self.messages.append(message)
        log.info(
            "push recorded: alarm %s %s to %s device …%s",
            message.alarm["id"],
            message.alarm["alarm_type"],
            message.platform,
            message.push_token[-6:],
        )
        return SendResult(ACCEPTED)

    async def aclose(self) -> None:
        return None


class WebhookSender:
    """POSTs each message as JSON, with an ``Idempotency-Key`` header stable across retries."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url = url
        self.client = http_client(timeout)

    async def send(self, message: Message) -> SendResult:
        body = {"push_token": message.push_token, "platform": message.platform, "alarm": message.alarm}
        try:
            response = await self.client.post(
                self.url,
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json", "Idempotency-Key": message.idempotency_key},
            )
        except httpx.HTTPError as exc:
            return transport_error(exc)
        return classify(response)

    async def aclose(self) -> None:
        await self.client.aclose()


class FcmSender:
    """FCM HTTP v1 (``projects/{id}/messages:send``) with a service account's OAuth 2 token.

    The endpoint and the token URI are configurable, so tests talk to a local
    stand-in. A retry sends the same message: Android replaces a notification
    with the same ``tag`` and iOS collapses the same ``apns-collapse-id``, so
    the user sees one alarm, not two.
    """

    SCOPE = "https://www.googleapis.com/auth/firebase.messaging"

    def __init__(
        self, credentials_json: str, *, endpoint: str, timeout: float, project_id: str | None, token_uri: str | None
    ) -> None:
        from google.oauth2 import service_account

        info = json.loads(credentials_json)
        if token_uri:
            info["token_uri"] = token_uri
        self.credentials = service_account.Credentials.from_service_account_info(info, scopes=[self.SCOPE])
        self.project_id = project_id or info["project_id"]
        self.url = f"{endpoint.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        self.timeout = timeout
        self.client = http_client(timeout)
        self._token_lock = threading.Lock()

    def _bearer_token(self) -> str:
        """A valid access token, refreshed through google-auth when missing or about to expire."""
        import google.auth.transport.requests

        with self._token_lock:
            if not self.credentials.valid:
                self.credentials.refresh(google.auth.transport.requests.Request())
            return self.credentials.token

    @staticmethod
    def body(message: Message) -> dict[str, Any]:
        """The v1 message: Korean title and body, the alarm in ``data`` (string values only)."""
        alarm = message.alarm
        key = message.idempotency_key
        return {
            "message": {
                "token": message.push_token,
                "notification": {"title": alarm["title"], "body": alarm["message"]},
                "data": {
                    "alarm_id": str(alarm["id"]),
                    "alarm_type": alarm["alarm_type"],
                    "market_id": str(alarm["market_id"]),
                    "target_date": alarm["target_date"],
                    "idempotency_key": key,
                },
                "android": {"collapse_key": key, "notification": {"tag": key}},
                "apns": {"headers": {"apns-collapse-id": key}},
            }
        }

    async def send(self, message: Message) -> SendResult:
        try:
            token = await asyncio.to_thread(self._bearer_token)
        except Exception as exc:  # google-auth raises its own errors for a refused or unreachable token URI
            return SendResult(RETRY, f"token refresh failed: {type(exc).__name__}")
        try:
            response = await self.client.post(
                self.url, json=self.body(message), headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            return transport_error(exc)
        result = classify(response)
        if result.outcome == REJECTED and _fcm_error_code(response) == "UNREGISTERED":
            return SendResult(UNREGISTERED, "FCM UNREGISTERED: the app was uninstalled or the token expired")
        if response.status_code == 401:  # an expired token: fetch a new one on the retry
            self.credentials.token = None
            return SendResult(RETRY, "HTTP 401")
        return result

    async def aclose(self) -> None:
        await self.client.aclose()


def _fcm_error_code(response: httpx.Response) -> str | None:
    """The ``errorCode`` of FCM's error details (``UNREGISTERED``, ``INVALID_ARGUMENT``...), if any."""
    try:
        details = response.json()["error"]["details"]
    except (ValueError, KeyError, TypeError):
        return None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            return str(detail["errorCode"])
    return None


def sender_from_config(config: Mapping[str, Any]) -> PushSender:
    """The sender PUSH_PROVIDER names (validated in weather.config); only the push workers build one."""
    provider = config["PUSH_PROVIDER"]
    if provider == "webhook":
        return WebhookSender(config["PUSH_WEBHOOK_URL"], timeout=config["PUSH_TIMEOUT_SECONDS"])
    if provider == "fcm":
        if not config["FCM_CREDENTIALS"]:
            raise ConfigError("PUSH_PROVIDER=fcm needs FCM_CREDENTIALS (the service account JSON, from the Secret)")
        return FcmSender(
            config["FCM_CREDENTIALS"],
            endpoint=config["FCM_ENDPOINT"],
            timeout=config["PUSH_TIMEOUT_SECONDS"],
            project_id=config["FCM_PROJECT_ID"],
            token_uri=config["FCM_TOKEN_URI"],
        )
    return RecordingSender()
