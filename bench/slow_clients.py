"""Slow clients against three ways of serving: what a kubelet's probes see while 40 connections trickle.

The same attack as tests/test_hostile_http.py (tests/support/slow_clients.py):
20 connections trickle header lines and 20 a declared 1 MB body, reconnecting
whenever the server closes them, while /healthz and a database-backed read are
probed every 0.5 s, each with 1 s to answer. The service starts through
./entrypoint.sh with two workers, on PostgreSQL, in three configurations:

- ``sync``: gunicorn's sync workers, the configuration before issue #22 (baseline);
- ``gthread``: gunicorn's threaded workers, 4 threads each (the other candidate);
- ``ours``: gunicorn.conf.py as shipped (weather/serving.py: asyncio worker,
  read deadlines, Flask on 4 threads).

Printed per configuration: probes answered within 1 s, and the probe latencies.
The figure that chose the design: the share of probes answered, ours against the
baseline measured in the same run (a ratio is meaningless when the baseline answers none).

Run::

    .venv/bin/python bench/slow_clients.py            # 20 s of attack per configuration
    BENCH_QUICK=1 .venv/bin/python bench/slow_clients.py   # 8 s
"""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import session, sizes
from tests.api_helpers import post_market
from tests.conftest import API_TOKEN, AUTH
from tests.helpers import child_env, free_port, launch, stop, wait_for_http
from tests.support.slow_clients import probe, slow_clients

SECONDS = 3.0 if sizes.SMOKE else 8.0 if sizes.QUICK else 20.0
PEERS = {
    "sync": 'worker_class = "sync"\nthreads = 1\n',
    "gthread": 'worker_class = "gthread"\nthreads = 4\n',
    "ours": "",
}


def configured_copy(name: str) -> Path:
    """A copy of the repository whose gunicorn.conf.py serves with ``name``'s worker class."""
    repo = session.copy_repository()
    conf = repo / "gunicorn.conf.py"
    text = conf.read_text()
    if PEERS[name]:
        text = re.sub(r"^worker_class = .*$", PEERS[name].strip(), text, flags=re.M)
    conf.write_text(text)
    return repo


def attack(name: str) -> tuple[int, int, list[float]]:
    """Probes answered in time, probes sent, and the latencies of the answered ones."""
    repo = configured_copy(name)
    with session.temp_database() as url:
        port = free_port()
        env = child_env(url, PORT=str(port), WEB_CONCURRENCY="2", API_TOKEN=API_TOKEN)
        server = launch(["./entrypoint.sh"], cwd=repo, env=env, output=session.temp_dir() / "server.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_http(f"{base}/readyz", server, timeout=120)
            market = post_market(base)
            urls = [f"{base}/healthz", f"{base}/api/v1/forecasts?market_id={market}&limit=5"]
            with slow_clients(port, headers=20, bodies=20, body_path="/api/v1/forecasts", body_headers=AUTH):
                probes = probe(urls, seconds=SECONDS)
        finally:
            stop(server)
    answered = [p.seconds for p in probes if p.status == 200]
    return len(answered), len(probes), answered


def main() -> None:
    session.begin("slow clients", __doc__)
    print(f"\n{SECONDS:g} s of attack each; machine shared with other work: read the ratios, not the milliseconds.\n")
    print("### probes answered within 1 s, under attack\n")
    print("| serving | probes answered within 1 s | median | slowest answered |")
    print("|---|---|---|---|")
    results = {}
    for name in PEERS:
        answered, sent, latencies = attack(name)
        results[name] = answered / sent if sent else 0.0
        median = f"{statistics.median(latencies) * 1000:.0f} ms" if latencies else "-"
        slowest = f"{max(latencies) * 1000:.0f} ms" if latencies else "-"
        print(f"| {name} | {answered} of {sent} ({results[name]:.0%}) | {median} | {slowest} |")
        sys.stdout.flush()
    print(
        f"\ngoal: ours answers every probe. Answered within 1 s: ours {results['ours']:.0%}, "
        f"gthread {results['gthread']:.0%}, "
        f"against the sync baseline's {results['sync']:.0%} in the same run"
    )


if __name__ == "__main__":
    main()
