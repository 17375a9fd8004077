"""A real local push webhook for tests: records every body, answers as the test chooses."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# mode -> (HTTP status, seconds to wait before answering)
DEFAULT_ANSWERS = {"ok": (200, 0.0), "error": (503, 0.0), "reject": (400, 0.0), "slow": (200, 1.0)}


class WebhookServer:
    """Serves on a free loopback port from a daemon thread; ``mode`` picks the next answers."""

    def __init__(self, mode: str = "ok", answers: dict[str, tuple[int, float]] | None = None) -> None:
        self.mode = mode
        self.answers = answers or DEFAULT_ANSWERS
        self.received: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                status, delay = hook.answers[hook.mode]
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/push"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
