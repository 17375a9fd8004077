"""Real local push providers for tests: a webhook and an FCM HTTP v1 stand-in.

Both serve on a free loopback port from a daemon thread, record every request
(time, headers, body) and answer as the test chooses.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# mode -> (HTTP status, seconds to wait before answering)
DEFAULT_ANSWERS = {
    "ok": (200, 0.0),
    "error": (503, 0.0),
    "reject": (400, 0.0),
    "slow": (200, 1.0),
    "redirect": (302, 0.0),
    "trickle": (200, 0.0),  # the status line one byte at a time, every 0.2 s, for 30 s
    "endless": (200, 0.0),  # a chunked body that never ends (until the client hangs up, or 60 s)
}


@dataclass
class Received:
    """One request the stand-in got."""

    at: float  # time.time()
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int = 0
    done: float | None = None  # time.time() once the answer was written


class _Server:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                item = Received(time.time(), self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                status, headers, payload, delay = owner.answer(item)
                item.status = status
                with owner.lock:
                    owner.received.append(item)
                owner.respond(self, status, headers, payload, delay)
                item.done = time.time()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, item: Received) -> tuple[int, dict[str, str], bytes, float]:
        raise NotImplementedError

    @staticmethod
    def respond(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], payload: bytes, delay: float):
        if delay:
            time.sleep(delay)
        if headers.pop("X-Endless", None):
            _stream_endlessly(handler)
            return
        if headers.pop("X-Trickle", None):
            try:
                for byte in b"HTTP/1.1 200 OK\r\n" * 10:
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
                    time.sleep(0.2)
            except OSError:
                pass
            return
        try:
            handler.send_response(status)
            for name, value in headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:  # the client gave up (its deadline): nothing to answer
            pass

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()


def _stream_endlessly(handler: BaseHTTPRequestHandler, seconds: float = 60.0) -> None:
    """A 200 whose chunked body goes on until the client closes the connection."""
    chunk = b"x" * 65536
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    try:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            handler.wfile.write(framed)
    except OSError:  # the client hung up: what a bounded reader does
        pass
    handler.close_connection = True


class WebhookServer(_Server):
    """A push webhook; ``mode`` picks the answers; ``failure_rate`` fails that share of calls with a 503."""

    def __init__(
        self,
        mode: str = "ok",
        answers: dict[str, tuple[int, float]] | None = None,
        *,
        failure_rate: float = 0.0,
        latency: float = 0.0,
        seed: int = 13,
        retry_after: str | None = None,
    ) -> None:
        self.mode = mode
        self.retry_after = retry_after  # the Retry-After header of 429 and 503 answers
        self.answers = answers or DEFAULT_ANSWERS
        self.failure_rate = failure_rate
        self.latency = latency
        self.random = random.Random(seed)
        super().__init__()
        self.url = f"{self.base}/push"

    def answer(self, item: Received) -> tuple[int, dict[str, str], bytes, float]:
        status, delay = self.answers[self.mode]
        with self.lock:
            failing = self.random.random() < self.failure_rate
        if failing:
            status = 503
        headers = {"Location": f"{self.base}/elsewhere"} if 300 <= status < 400 else {}
        if status in (429, 503) and self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        if self.mode in ("trickle", "endless"):
            headers[f"X-{self.mode.title()}"] = "1"
        return status, headers, b"", delay + self.latency

    def accepted(self) -> list[Received]:
        """The requests answered 2xx."""
        with self.lock:
            return [r for r in self.received if 200 <= r.status < 300 and r.done is not None]


@dataclass
class FcmStandIn(_Server):
    """FCM HTTP v1 and Google's OAuth 2 token endpoint, as documented, on one local server.

    ``/token`` accepts a JWT-bearer grant and issues ``access_token``;
    ``/v1/projects/{project}/messages:send`` checks that bearer token and the
    message shape. Tokens in ``unregistered`` answer 404 UNREGISTERED; tokens in
    ``throttled`` get one 429 with ``Retry-After: throttle_seconds`` first.
    """

    project: str = "weather-test"
    unregistered: set[str] = field(default_factory=set)
    throttled: set[str] = field(default_factory=set)
    throttle_seconds: int = 1
    access_token: str = "stand-in-access-token"
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()
        self.token_uri = f"{self.base}/token"

    def answer(self, item: Received) -> tuple[int, dict[str, str], bytes, float]:
        if item.path == "/token":
            return 200, {"Content-Type": "application/json"}, self._token(item), 0.0
        if item.path != f"/v1/projects/{self.project}/messages:send":
            return 404, {}, b"", 0.0
        if item.headers.get("authorization") != f"Bearer {self.access_token}":
            return 401, {"Content-Type": "application/json"}, _error(401, "UNAUTHENTICATED", None), 0.0
        problem = message_problem(item.body)
        if problem:
            self.problems.append(problem)
            return 400, {"Content-Type": "application/json"}, _error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), 0.0
        token = item.body["message"]["token"]
        if token in self.unregistered:
            return 404, {"Content-Type": "application/json"}, _error(404, "NOT_FOUND", "UNREGISTERED"), 0.0
        with self.lock:
            if token in self.throttled:
                self.throttled.discard(token)
                payload = _error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")
                return 429, {"Retry-After": str(self.throttle_seconds)}, payload, 0.0
        name = f"projects/{self.project}/messages/{len(self.received)}"
        return 200, {"Content-Type": "application/json"}, json.dumps({"name": name}).encode(), 0.0

    def _token(self, item: Received) -> bytes:
        # google-auth posts a form (grant_type, assertion); the body arrives as "raw".
        raw = item.body.get("raw", "")
        if "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" not in raw or "assertion=" not in raw:
            self.problems.append(f"bad token request: {raw[:80]}")
        return json.dumps({"access_token": self.access_token, "expires_in": 3600, "token_type": "Bearer"}).encode()

    def sends(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path.endswith("messages:send")]


def message_problem(body: dict[str, Any]) -> str | None:
    """What is wrong with an FCM v1 send body, or None."""
    message = body.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("token"), str):
        return "message.token missing"
    notification = message.get("notification") or {}
    if not notification.get("title") or not notification.get("body"):
        return "notification title/body missing"
    data = message.get("data") or {}
    if not all(isinstance(v, str) for v in data.values()):
        return "data values must be strings"
    if not data.get("alarm_id") or not data.get("alarm_type"):
        return "data.alarm_id/alarm_type missing"
    return None


def _error(code: int, status: str, error_code: str | None) -> bytes:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}]
    return json.dumps({"error": {"code": code, "status": status, "details": details if error_code else []}}).encode()
