"""Fault injection helpers: a TCP proxy in front of PostgreSQL that can drop and refuse connections.

The shared PostgreSQL server is never stopped: the service talks to it through
this proxy, and "the database is down" means the proxy resets every connection.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from pathlib import Path


class FaultProxy:
    """Listens on 127.0.0.1:<port>; forwards to ``upstream`` while up, resets every connection while down."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432), *, up: bool = True) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._up = threading.Event()
        if up:
            self._up.set()
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.forwarded = self.refused = self.cut_connections = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def url(self, database_url: str, password: str = "s3cret-pw") -> str:
        """``database_url`` (postgresql://user@127.0.0.1:5432/db) redirected through the proxy, with a password."""
        from sqlalchemy.engine import make_url

        return make_url(database_url).set(port=self.port, password=password).render_as_string(hide_password=False)

    def down(self) -> None:
        """Cut every open connection and refuse new ones (a database restart, as clients see it)."""
        self._up.clear()
        with self._lock:
            pairs, self._pairs = self._pairs, []
            self.cut_connections += len(pairs)
        for pair in pairs:
            for sock in pair:
                _reset(sock)

    def up(self) -> None:
        """Forward new connections again."""
        self._up.set()

    def close(self) -> None:
        self.down()
        self.listener.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                self.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._pairs.append((client, server))
                self.forwarded += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees the connection die at once."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        pids.extend(int(child) for child in children)
    return pids
