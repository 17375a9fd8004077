"""Push senders: FCM HTTP v1, a webhook, and a recording sender for development.

A sender makes one provider call and says what became of it (``SendResult``);
it never sleeps, never retries and never touches the database: retrying is the
worker's job (``weather.push.deliveries``), so every sender gets the same policy.
Every call is bounded as a whole by the caller (``asyncio.timeout``), at most
MAX_ANSWER_BYTES of an answer are read, redirects are not followed (a 3xx is a
failure: a redirected POST would arrive as a body-less GET) and TLS
certificates are verified. The client is aiohttp: at 64 concurrent calls httpx
reached a small fraction of the provider's rate (bench/README.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp

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


# Most a provider's answer may cost: FCM's error JSON fits in a few hundred
# bytes; a webhook that streams an endless body costs one bounded read.
MAX_ANSWER_BYTES = 4096
# A Retry-After further out than this is read as this (the policy's
# PUSH_MAX_AGE_SECONDS then decides whether waiting is worth it at all).
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class Answer:
    """What a sender keeps of a provider's answer: status, Retry-After and the first bytes of the body."""

    status: int
    retry_after: str | None = None
    head: bytes = b""


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds, capped at MAX_RETRY_AFTER_SECONDS; None when absent or unreadable.

    Delta-seconds are ASCII digits only (``"²".isdigit()`` is true); an HTTP
    date may carry any zone, and one without (``-0000``, which the stdlib
    returns naive) is UTC.
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(MAX_RETRY_AFTER_SECONDS, float(value[:12]))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, (when - utcnow()).total_seconds()))


def classify(answer: Answer) -> SendResult:
    """2xx accepted; 408, 429 and 5xx worth a retry (Retry-After kept); 3xx and other 4xx rejected."""
    status = answer.status
    if 200 <= status < 300:
        return SendResult(ACCEPTED)
    if status in RETRYABLE_STATUS or status >= 500:
        return SendResult(RETRY, f"HTTP {status}", retry_after_seconds(answer.retry_after))
    if 300 <= status < 400:
        return SendResult(REJECTED, f"HTTP {status}: redirects are not followed")
    return SendResult(REJECTED, f"HTTP {status}")


def transport_error(exc: aiohttp.ClientError) -> SendResult:
    """Timeouts and connection errors are worth a retry; only a class name is kept (an URL may hold a secret)."""
    name = "ConnectError" if isinstance(exc, aiohttp.ClientConnectorError) else type(exc).__name__
    return SendResult(RETRY, name)


class HttpPoster:
    """The one HTTP client policy of every sender: aiohttp (chosen by measurement, see bench/README.md).

    TLS verified, no redirects, no decompression (a compressed answer could
    grow without bound), and at most MAX_ANSWER_BYTES of any answer read:
    leaving the rest unread closes that connection instead of reusing it. The
    session is made on first use, inside the worker's event loop.
    """

    def __init__(self, timeout: float, connections: int) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections),
                timeout=self.timeout,
                auto_decompress=False,
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST ``body``; raises aiohttp.ClientError for transport failures."""
        all_headers = {"Content-Type": "application/json", "Accept-Encoding": "identity", **headers}
        async with self._client().post(url, data=body, headers=all_headers, allow_redirects=False) as response:
            head = bytearray()
            while len(head) < MAX_ANSWER_BYTES:
                chunk = await response.content.read(MAX_ANSWER_BYTES - len(head))
                if not chunk:
                    break
                head += chunk
            return Answer(response.status, response.headers.get("Retry-After"), bytes(head))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


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

    def __init__(self, url: str, *, timeout: float, connections: int = 100) -> None:
        self.url = url
        self.http = HttpPoster(timeout, connections)

    async def send(self, message: Message) -> SendResult:
        body = {"push_token": message.push_token, "platform": message.platform, "alarm": message.alarm}
        try:
            answer = await self.http.post(
                self.url,
                json.dumps(body, ensure_ascii=False).encode(),
                {"Idempotency-Key": message.idempotency_key},
            )
        except aiohttp.ClientError as exc:
            return transport_error(exc)
        return classify(answer)

    async def aclose(self) -> None:
        await self.http.aclose()


class FcmSender:
    """FCM HTTP v1 (``projects/{id}/messages:send``) with a service account's OAuth 2 token.

    The endpoint and the token URI are configurable, so tests talk to a local
    stand-in. A retry sends the same message: Android replaces a notification
    with the same ``tag`` and iOS collapses the same ``apns-collapse-id``, so
    the user sees one alarm, not two.
    """

    SCOPE = "https://www.googleapis.com/auth/firebase.messaging"

    def __init__(
        self,
        credentials_json: str,
        *,
        endpoint: str,
        timeout: float,
        project_id: str | None,
        token_uri: str | None,
        connections: int = 100,
    ) -> None:
        from google.oauth2 import service_account

        info = json.loads(credentials_json)
        if token_uri:
            info["token_uri"] = token_uri
        self.credentials = service_account.Credentials.from_service_account_info(info, scopes=[self.SCOPE])
        self.project_id = project_id or info["project_id"]
        self.url = f"{endpoint.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
        self.http = HttpPoster(timeout, connections)
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
            answer = await self.http.post(
                self.url, json.dumps(self.body(message)).encode(), {"Authorization": f"Bearer {token}"}
            )
        except aiohttp.ClientError as exc:
            return transport_error(exc)
        result = classify(answer)
        if result.outcome == REJECTED and _fcm_error_code(answer.head) == "UNREGISTERED":
            return SendResult(UNREGISTERED, "FCM UNREGISTERED: the app was uninstalled or the token expired")
        if answer.status == 401:  # an expired token: fetch a new one on the retry
            self.credentials.token = None
            return SendResult(RETRY, "HTTP 401")
        return result

    async def aclose(self) -> None:
        await self.http.aclose()


def _fcm_error_code(head: bytes) -> str | None:
    """The ``errorCode`` of FCM's error details (``UNREGISTERED``, ``INVALID_ARGUMENT``...), if any."""
    try:
        details = json.loads(head)["error"]["details"]
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
        return WebhookSender(
            config["PUSH_WEBHOOK_URL"],
            timeout=config["PUSH_TIMEOUT_SECONDS"],
            connections=config["PUSH_WORKER_CONCURRENCY"],
        )
    if provider == "fcm":
        if not config["FCM_CREDENTIALS"]:
            raise ConfigError("PUSH_PROVIDER=fcm needs FCM_CREDENTIALS (the service account JSON, from the Secret)")
        return FcmSender(
            config["FCM_CREDENTIALS"],
            endpoint=config["FCM_ENDPOINT"],
            timeout=config["PUSH_TIMEOUT_SECONDS"],
            project_id=config["FCM_PROJECT_ID"],
            token_uri=config["FCM_TOKEN_URI"],
            connections=config["PUSH_WORKER_CONCURRENCY"],
        )
    return RecordingSender()
