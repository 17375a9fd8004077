"""Slow clients and probes: the attack of issue #22 and what Kubernetes sees meanwhile.

``slow_clients`` keeps N connections trickling their headers and M trickling a
declared 1 MB body, each reconnecting whenever the server closes it (an
attacker who reconnects); ``probe`` asks a few URLs every 0.5 s with a 1 s
deadline, as a kubelet probe would. The test and bench/slow_clients.py share them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

TRICKLE_PERIOD = 0.5  # seconds between two pieces of a slow client
DECLARED_BODY = 1_000_000


@dataclass
class Attack:
    """What the slow clients did: connections opened, and answers the server sent them (status line first words)."""

    connections: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, answer: str) -> None:
        with self.lock:
            self.answers[answer] = self.answers.get(answer, 0) + 1


def _trickle(port: int, head: bytes, piece: bytes, stop: threading.Event, attack: Attack) -> None:
    """Send ``head`` and then ``piece`` every TRICKLE_PERIOD, reconnecting whenever the server closes."""
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                with attack.lock:
                    attack.connections += 1
                connection.sendall(head)
                connection.settimeout(TRICKLE_PERIOD)
                while not stop.is_set():
                    try:
                        answer = connection.recv(4096)
                    except TimeoutError:
                        connection.sendall(piece)
                        continue
                    attack.count(" ".join(answer.split(b"\r\n", 1)[0].decode("latin-1").split()[1:2]) or "closed")
                    break
        except OSError:
            attack.count("reset")
            stop.wait(TRICKLE_PERIOD)


@contextmanager
def slow_clients(
    port: int, *, headers: int, bodies: int, body_path: str, body_headers: Mapping[str, str] | None = None
) -> Iterator[Attack]:
    """``headers`` clients trickling header lines and ``bodies`` trickling a declared 1 MB body to ``body_path``."""
    attack = Attack()
    stop = threading.Event()
    header_head = b"GET /api/v1/markets HTTP/1.1\r\nHost: slow\r\n"
    extra = "".join(f"{name}: {value}\r\n" for name, value in (body_headers or {}).items())
    body_head = (
        f"POST {body_path} HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {DECLARED_BODY}\r\n\r\n"
    ).encode()
    jobs = [(header_head, b"X-Slow: 1\r\n")] * headers + [(body_head, b" " * 100)] * bodies
    threads = [threading.Thread(target=_trickle, args=(port, *job, stop, attack), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)  # every slow client connected and started trickling
        yield attack
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)


@dataclass
class Probe:
    url: str
    status: int | None
    seconds: float
    error: str = ""


def probe(urls: list[str], *, seconds: float = 20.0, period: float = 0.5, deadline: float = 1.0) -> list[Probe]:
    """Ask every URL every ``period`` for ``seconds``, each with ``deadline`` to answer (as a kubelet would)."""

    def ask(url: str) -> Probe:
        started = time.monotonic()
        try:
            # A fresh connection each time, as a kubelet probe opens one.
            status = requests.get(url, timeout=deadline, headers={"Connection": "close"}).status_code
            return Probe(url, status, time.monotonic() - started)
        except requests.RequestException as exc:
            return Probe(url, None, time.monotonic() - started, type(exc).__name__)

    results: list[Probe] = []
    end = time.monotonic() + seconds
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        while time.monotonic() < end:
            tick = time.monotonic()
            results += pool.map(ask, urls)
            time.sleep(max(0.0, period - (time.monotonic() - tick)))
    return results
