"""How big a benchmark runs: full, quick (``BENCH_QUICK=1``) or smoke (``BENCH_SMOKE=1``, the tiniest sizes).

Quick mode turns minutes into tens of seconds; smoke mode only proves a script runs (the smoke test).
"""

from __future__ import annotations

import os

SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")
QUICK = SMOKE or os.environ.get("BENCH_QUICK", "") not in ("", "0")
MODE = "smoke" if SMOKE else "quick" if QUICK else "full"


def size(full: int, quick: int, smoke: int | None = None) -> int:
    """The size for the current mode (full, BENCH_QUICK=1 or BENCH_SMOKE=1)."""
    if SMOKE:
        return quick if smoke is None else smoke
    return quick if QUICK else full
