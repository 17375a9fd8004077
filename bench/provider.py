"""A push provider stand-in for benchmarks: its own process, asyncio, never the bottleneck.

A raw ``asyncio.Protocol`` HTTP/1.1 server (keep-alive, listen backlog 4,096):
each POST is answered ``200`` after ``latency`` seconds, with no per-request
allocation beyond a timer. It keeps counters only: how many POSTs it
answered, when it received the first, when it answered the last. ``GET /stats``
returns them as JSON; ``POST /reset`` zeroes them. Its own ceiling (requests/s
at latency 0) is measured by ``bench/push.py`` and printed next to every figure.

Run::

    .venv/bin/python -m bench.provider PORT LATENCY_SECONDS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

BACKLOG = 4096
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.answered = 0
        self.first_at: float | None = None
        self.last_done: float | None = None

    def as_json(self) -> bytes:
        body = json.dumps({"answered": self.answered, "first_at": self.first_at, "last_done": self.last_done}).encode()
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class Provider(asyncio.Protocol):
    def __init__(self, stats: Stats, latency: float) -> None:
        self.stats = stats
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.request(head.split(" ", 2))

    def request(self, line: list[str]) -> None:
        method, path = line[0], line[1]
        if method == "GET" and path == "/stats":
            self.write(self.stats.as_json())
        elif method == "POST" and path == "/reset":
            self.stats.reset()
            self.write(OK)
        else:
            if self.stats.first_at is None:
                self.stats.first_at = time.time()
            if self.latency:
                asyncio.get_running_loop().call_later(self.latency, self.answer)
            else:
                self.answer()

    def answer(self) -> None:
        self.stats.answered += 1
        self.stats.last_done = time.time()
        self.write(OK)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, latency: float) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Provider(stats, latency), "127.0.0.1", port, backlog=BACKLOG)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2])))
