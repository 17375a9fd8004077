"""weather/serving.py's request bounds, in-process: a request's body is read in full, within size, time and
memory budgets, before a thread runs the app; a request past the timeout is answered 503.

The same code against the real server and slow sockets: tests/test_hostile_http.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import runpy
import threading
import types
from typing import Any

from tests.helpers import REPO
from weather.serving import BODIES_IN_MEMORY, BoundedWSGI

MAX_BODY = 1000


def echo_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{len(body)} bytes".encode()]


def bounded(app: Any = echo_app, **overrides: Any) -> BoundedWSGI:
    settings: dict[str, Any] = {"max_body": MAX_BODY, "body_timeout": 0.5, "request_timeout": 5.0, "threads": 2}
    return BoundedWSGI(app, **{**settings, **overrides})


def scope(length: int | None) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {
        "type": "http",
        "method": "POST",
        "path": "/",
        "query_string": b"",
        "headers": headers,
        "http_version": "1.1",
    }


async def call(
    app: BoundedWSGI, length: int | None, pieces: list[bytes], pause: float = 0.0, finished: bool = True
) -> tuple[int, bytes]:
    """Send ``pieces`` as the body (``pause`` seconds before each; then stall unless ``finished``); the answer."""
    queue = list(pieces)
    answer: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        if not queue:
            await asyncio.sleep(3600)  # a client that stopped sending
        await asyncio.sleep(pause)
        return {"type": "http.request", "body": queue.pop(0), "more_body": bool(queue) or not finished}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        else:
            answer["body"] += message.get("body", b"")

    await app(scope(length), receive, send)
    return answer["status"], answer["body"]


def error(answer: tuple[int, bytes]) -> tuple[int, str]:
    status, body = answer
    document = json.loads(body)
    assert document["status"] == status and {"error", "message"} <= set(document), document
    return status, document["error"]


def test_a_complete_body_reaches_the_app():
    assert asyncio.run(call(bounded(), 10, [b"01234", b"56789"])) == (200, b"10 bytes")
    assert asyncio.run(call(bounded(), None, [b"chunk"] * 3)) == (200, b"15 bytes")


def test_a_declared_body_over_the_limit_is_413_unread():
    assert error(asyncio.run(call(bounded(), MAX_BODY + 1, []))) == (413, "request_entity_too_large")


def test_a_chunked_body_growing_over_the_limit_is_413():
    assert error(asyncio.run(call(bounded(), None, [b"x" * 600, b"x" * 600]))) == (413, "request_entity_too_large")


def test_a_body_that_does_not_arrive_in_time_is_408():
    status, body = asyncio.run(call(bounded(), 100, [b"x" * 10], finished=False))
    assert error((status, body)) == (408, "request_timeout")
    assert "0.5 s" in json.loads(body)["message"]


def test_bodies_held_at_once_stay_within_the_memory_budget():
    """BODIES_IN_MEMORY slow uploads of the largest size fill the budget; one more is refused before it is read."""
    app = bounded(body_timeout=5.0)

    async def many() -> list[tuple[int, bytes]]:
        slow = [call(app, MAX_BODY, [b"x" * MAX_BODY], pause=0.3) for _ in range(BODIES_IN_MEMORY)]
        tasks = [asyncio.ensure_future(job) for job in slow]
        await asyncio.sleep(0.1)  # all of them reserved and waiting for their bodies
        refused = await call(app, 10, [b"x" * 10])
        return [refused, *await asyncio.gather(*tasks)]

    refused, *served = asyncio.run(many())
    assert error(refused) == (503, "service_unavailable")
    assert served == [(200, f"{MAX_BODY} bytes".encode())] * BODIES_IN_MEMORY
    assert app.buffered == 0  # every reservation released


def test_a_request_past_the_timeout_is_503_and_the_worker_is_told():
    release = threading.Event()
    stuck: list[bool] = []

    def hanging_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        release.wait(10)
        start_response("200 OK", [])
        return [b""]

    app = bounded(hanging_app, request_timeout=0.3, on_stuck=lambda: stuck.append(True))
    try:
        assert error(asyncio.run(call(app, 0, [b""]))) == (503, "service_unavailable")
    finally:
        release.set()
    assert stuck == [True]


def test_worker_abort_only_logs(caplog):
    """gunicorn calls worker_abort in a signal handler with no request to answer: it must never raise."""
    hook = runpy.run_path(str(REPO / "gunicorn.conf.py"))["worker_abort"]
    worker = types.SimpleNamespace(log=logging.getLogger("gunicorn.error"))
    with caplog.at_level(logging.WARNING):
        hook(worker)
        hook(object())  # not even a worker: still nothing raised
    assert "worker event loop stalled" in caplog.text
