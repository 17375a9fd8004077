"""16 entrypoints started at once, on an empty database and then at head: no crash, each revision once.

One pod takes the migration lock and applies the chain; the others wait and
find nothing to apply; at head no pod takes the lock at all.

``make test`` runs one round (16 on empty + 16 at head); ``make fuzz`` sets
FLEET_ROUNDS=10 (a fresh database per round). Prints the figures.
"""

from __future__ import annotations

import os
import signal
import time

from tests.helpers import HEAD, REVISIONS, wait_for_http
from tests.test_entrypoint import start
from tests.test_fleet_lock import ledger_and_version

PODS = 16
ROUNDS = int(os.environ.get("FLEET_ROUNDS", "1"))


def run_fleet(url: str, count: int) -> list[str]:
    """Start ``count`` entrypoints at once, wait until all serve, stop them all at once (SIGTERM)."""
    fleet = [start(url) for _ in range(count)]
    try:
        for process, port in fleet:
            wait_for_http(f"http://127.0.0.1:{port}/readyz", process, timeout=120)
    finally:
        for process, _ in fleet:
            process.send_signal(signal.SIGTERM)
        outputs = []
        for process, _ in fleet:
            output, _ = process.communicate(timeout=60)
            outputs.append(output)
            assert process.returncode == 0, output
    return outputs


def test_sixteen_pods_at_once(new_pg_database):
    figures = []
    for round_ in range(ROUNDS):
        url = new_pg_database()
        began = time.monotonic()
        empty = run_fleet(url, PODS)  # asserts every pod served /readyz and exited 0 on SIGTERM
        applied, version = ledger_and_version(url)
        at_head = run_fleet(url, PODS)
        took = time.monotonic() - began
        crashes = sum("Traceback" in out for out in empty + at_head)
        appliers = sum(f"applied {REVISIONS[0]}" in out for out in empty)
        figures.append(
            f"round {round_ + 1}/{ROUNDS}: {PODS} pods on empty + {PODS} at head in {took:.1f}s, "
            f"crashes {crashes}, pods that applied the chain {appliers}, ledger {applied}"
        )
        assert crashes == 0
        assert applied == sorted((revision, 1) for revision in REVISIONS)  # each revision exactly once
        assert version == [HEAD] and appliers == 1
        assert all("nothing to apply" in out and "lock acquired" not in out for out in at_head)
        assert ledger_and_version(url) == (applied, version)
    print("\n" + "\n".join(figures))
