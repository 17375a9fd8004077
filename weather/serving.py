"""How the pod serves HTTP: gunicorn's asyncio worker reads each request, bounded; Flask runs on threads.

Why not sync workers: a sync worker is held by one connection from its first
byte to its last, so two clients trickling their headers held both workers of a
pod and every probe timed out. gthread has the same flaw one step later: a
thread blocks on a request's headers and body once its first byte arrived, so
N slow clients hold N threads. Here gunicorn's ``asgi`` worker reads requests on
its event loop, where a slow client costs a buffer, not a worker or a thread:

- the headers of a connection's first request must arrive within
  ``header_timeout`` (later ones are bounded by gunicorn's keepalive), else 408;
- the body is read in full before the app runs, refused unread when its
  declared length is over MAX_CONTENT_LENGTH (413), and must arrive within
  ``body_timeout`` (408); a process holds at most BODIES_IN_MEMORY full-size
  bodies at once (503 beyond), so slow uploads cannot add up to an OOM kill;
- only then does a2wsgi hand the request to a Flask thread (``threads`` per
  worker process), which therefore never waits on the network;
- a request that outlives ``request_timeout`` is answered 503 (the thread
  cannot be stopped) and the worker stops taking connections and is replaced,
  as gunicorn does with a sync worker past its timeout.

Every answer the server itself writes (400, 408, 413, 414, 431, 503) is in the
API's JSON error shape (weather.errors.error_body). gunicorn offers no public
way to shape its own error answers: ``ServiceProtocol`` overrides its one
writer, and tests/test_hostile_http.py fails if gunicorn changes that.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from a2wsgi import WSGIMiddleware
from gunicorn.asgi import protocol as gunicorn_protocol
from gunicorn.workers import gasgi

from weather.errors import error_body

log = logging.getLogger(__name__)

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# What gunicorn's parser refuses, said in the API's words (its own text may quote the request).
SERVER_ERRORS = {
    400: "The request is not valid HTTP.",
    408: "The request did not arrive in time.",
    413: "The request body is larger than the server accepts.",
    414: "The request line (method, path and query) is longer than the server accepts.",
    431: "The request headers are larger or more numerous than the server accepts.",
    501: "The request uses a transfer coding the server does not support.",
    503: "The request took longer than the server allows and was stopped; try again later.",
}


def json_error(status: int, message: str | None = None) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and headers of a server-written error in the API's JSON shape."""
    code = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    body = json.dumps(error_body(status, code, message or SERVER_ERRORS.get(status, code))).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"5"))
    return body, headers


async def send_error(send: Send, status: int, message: str | None = None) -> None:
    body, headers = json_error(status, message)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# At most this many MAX_CONTENT_LENGTH bodies are held in memory at once by one worker process
# (64 MiB at the default 4 MiB): beyond that a new body is refused 503 before it is read.
BODIES_IN_MEMORY = 16


class ServerBusy(Exception):
    """Taking this body would pass the process's budget for bodies held in memory."""


class BodyTooLarge(Exception):
    """The body grew past the limit while it was read (chunked, or longer than declared)."""


class ClientGone(Exception):
    """The client disconnected before its body arrived."""


class BoundedWSGI:
    """An ASGI app that reads the request in full, within bounds, then runs ``wsgi_app`` on a thread."""

    def __init__(
        self,
        wsgi_app: Any,
        *,
        max_body: int | None,
        body_timeout: float,
        request_timeout: float,
        threads: int,
        on_stuck: Callable[[], None] = lambda: None,
    ) -> None:
        self.inner: Callable[[Any, Any, Any], Awaitable[None]] = WSGIMiddleware(wsgi_app, workers=threads)
        self.max_body = max_body
        # Bodies held at once by this process: many slow uploads must not add up to an OOM kill.
        self.buffer_budget = None if max_body is None else BODIES_IN_MEMORY * max_body
        self.buffered = 0
        self.body_timeout = body_timeout
        self.request_timeout = request_timeout
        self.on_stuck = on_stuck

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan (and websocket, refused) as a2wsgi answers them
            await self.inner(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and self.max_body is not None and int(declared) > self.max_body:
            await send_error(send, 413)  # never read: gunicorn closes the connection after it
            return
        held = [0]  # bytes of this request counted against the budget
        try:
            body = await asyncio.wait_for(self._read_body(receive, int(declared or 0), held), self.body_timeout)
            await self._run(scope, body, send)
        except TimeoutError:
            await send_error(send, 408, f"The request body did not arrive within {self.body_timeout:g} s.")
        except BodyTooLarge:
            await send_error(send, 413)
        except ServerBusy:
            await send_error(send, 503, "The server holds too many request bodies at once; try again shortly.")
        except ClientGone:
            pass
        finally:
            self.buffered -= held[0]

    def _hold(self, size: int, held: list[int]) -> None:
        if self.buffer_budget is not None and self.buffered + size > self.buffer_budget:
            raise ServerBusy
        self.buffered += size
        held[0] += size

    async def _read_body(self, receive: Receive, declared: int, held: list[int]) -> bytes:
        self._hold(declared, held)  # reserved up front, so a slow upload cannot overcommit
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if self.max_body is not None and size > self.max_body:
                raise BodyTooLarge
            if size > held[0]:  # chunked, or more than declared
                self._hold(size - held[0], held)
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _run(self, scope: Message, body: bytes, send: Send) -> None:
        delivered = False
        started = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await asyncio.wait_for(self.inner(scope, replay, tracked), self.request_timeout)
        except TimeoutError:
            log.warning(
                "request exceeded the request timeout (%gs): answering 503; this worker is replaced",
                self.request_timeout,
            )
            if not started:
                await send_error(send, 503)
            self.on_stuck()


class ServiceProtocol(gunicorn_protocol.ASGIProtocol):
    """gunicorn's HTTP/1 protocol with JSON error answers and a deadline on the first request's headers."""

    header_timeout = 10.0  # set by ServiceWorker from the gunicorn settings

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._header_deadline = self.worker.loop.call_later(self.header_timeout, self._headers_overdue)

    def _headers_overdue(self) -> None:
        # The first request's headers are still incomplete (later requests: gunicorn's keepalive).
        if self._current_request is None and self.req_count <= 1 and not self._closed:
            self._send_error_response(408, f"The request headers did not arrive within {self.header_timeout:g} s.")
            self._close_transport()

    def connection_lost(self, exc: Exception | None) -> None:
        self._header_deadline.cancel()
        super().connection_lost(exc)

    def _send_error_response(self, status: int, message: str, extra_headers: Any = ()) -> None:
        body, headers = json_error(status, SERVER_ERRORS.get(status) if status != 408 else message)
        lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
        lines += [f"{name.decode()}: {value.decode()}" for name, value in headers]
        lines += [f"{name}: {value}" for name, value in extra_headers]
        lines.append("Connection: close")
        self._safe_write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class ServiceWorker(gasgi.ASGIWorker):
    """gunicorn's ``asgi`` worker serving the Flask app through ``BoundedWSGI`` and ``ServiceProtocol``.

    gunicorn's own settings give the Flask threads per process (``threads``) and
    the request timeout (``timeout``); the two read deadlines are class
    attributes, set by ``service_worker`` from gunicorn.conf.py.
    """

    header_timeout = 10.0
    body_timeout = 30.0

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """gunicorn's ``asgi`` worker warns that it ignores ``threads``; this one runs Flask on them."""

    def load_wsgi(self) -> None:
        super().load_wsgi()  # self.asgi = the Flask app, as loaded
        flask_app: Any = getattr(self, "asgi")  # noqa: B009 (gunicorn sets it untyped)
        ServiceProtocol.header_timeout = self.header_timeout
        self.asgi = BoundedWSGI(
            flask_app,
            max_body=getattr(flask_app, "config", {}).get("MAX_CONTENT_LENGTH"),
            body_timeout=self.body_timeout,
            request_timeout=float(self.cfg.timeout),
            threads=self.cfg.threads,
            on_stuck=self.stop_taking_requests,
        )

    def run(self) -> None:
        # gasgi builds its protocol by this module-level name: the one place gunicorn is adapted.
        gasgi.ASGIProtocol = ServiceProtocol
        super().run()

    def stop_taking_requests(self) -> None:
        """A thread is stuck in a request: finish the others, exit, and let the master start a fresh worker."""
        self.alive = False


def service_worker(*, header_timeout: float, body_timeout: float) -> type[ServiceWorker]:
    """The worker class for gunicorn.conf.py's ``worker_class``, with its read deadlines."""
    return type("ServiceWorker", (ServiceWorker,), {"header_timeout": header_timeout, "body_timeout": body_timeout})
