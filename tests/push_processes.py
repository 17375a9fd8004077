"""Real push worker processes for tests: started as `flask push worker`, their log drained and kept."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from tests.helpers import REPO, start_flask


class WorkerProcess:
    """``flask push worker`` in the background; its log is read continuously (a full pipe would stall it)."""

    def __init__(self, database_url: str, **env: str) -> None:
        # cwd spelled out: an environment variable named like a keyword argument must not fill it.
        self.process = start_flask(database_url, "push", "worker", cwd=REPO, **env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL: no chance to finish or release anything."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM, then wait for a graceful exit; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._reader.join(5)


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s")
