"""A fleet starting at once: N entrypoints released at the same instant, ours against a lock-free peer.

For N pods (processes) released through one gate at the same instant, on
(a) an empty database (N = 1, 4, 8, 16) and (b) a database at head (N = 1, 4, 8;
16 only when BENCH_FLEET_SIZES asks for it):

- failures: processes that exit or never answer ``/readyz`` 200 (timeout);
- time from the gate opening until every pod serves ``/readyz`` 200;
- lock waits: log lines "waiting for lock" (the advisory lock's waiters);
- each revision applied once: ``migration_history`` has exactly one 'up' row
  per shipped revision and ``alembic_version`` is at head.

Ours is ``./entrypoint.sh``. The peer is the seed-style start
``bench/peers/seed_entrypoint.sh`` (``flask db upgrade && exec gunicorn``) run
in a copy of the repository whose ``migrations/env.py`` is Flask-Migrate's own
template: no lock, no ledger -- the team's original set-up, which crashes with
UniqueViolation (alembic_version / pg_type) when several pods start on an
empty database. Ours and the peer alternate round by round. Goals: 0 failures
in 20 rounds of 16 on an empty database; time for 8 at head <= 0.7x the peer's.
Sizes without a goal get one round each; the pods of a round are stopped
together (SIGTERM to all, then one shared grace period).

Run::

    .venv/bin/python bench/fleet.py             # full (about 5 minutes on 2 cores)
    BENCH_QUICK=1 .venv/bin/python bench/fleet.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_FLEET_SIZES``
(e.g. "1,4") and ``BENCH_ROUNDS`` override the sizes and the rounds per size.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import plots, report, session, sizes
from bench.report import Series
from tests.helpers import HEAD, REPO, REVISIONS, child_env, flask, free_port, http_status, launch, query, stop_many

READY_TIMEOUT = 120.0
OURS, PEER = "ours", "peer (stock env.py, no lock)"
# The gate: every pod's shell waits for one file, then execs the entrypoint.
GATE = 'while [ ! -e "$BENCH_GATE" ]; do sleep 0.005; done; exec "$@"'


@dataclass
class Round:
    failures: int
    all_ready: float | None  # seconds from the gate until the last pod served; None if any failed
    lock_waits: int
    causes: Counter
    applied_once: bool


@dataclass
class Tally:
    rounds: list[Round] = field(default_factory=list)

    def add(self, result: Round) -> None:
        self.rounds.append(result)

    @property
    def failures(self) -> int:
        return sum(r.failures for r in self.rounds)

    @property
    def failed_rounds(self) -> int:
        return sum(1 for r in self.rounds if r.failures)

    @property
    def times(self) -> Series:
        return Series("all ready", [r.all_ready for r in self.rounds if r.all_ready is not None])


def stock_peer_repository() -> Path:
    """A repository copy whose migrations/env.py and alembic.ini are Flask-Migrate's own templates:
    no lock, no ledger, no timeouts -- the team's original, lock-free set-up (its env.py reads the
    template's logging sections, which our alembic.ini leaves to safe_migrations/log.py)."""
    import flask_migrate

    repo = session.copy_repository()
    templates = Path(flask_migrate.__file__).parent / "templates" / "flask"
    shutil.copyfile(templates / "env.py", repo / "migrations" / "env.py")
    shutil.copyfile(templates / "alembic.ini.mako", repo / "migrations" / "alembic.ini")
    return repo


def start_fleet(n: int, command: str, cwd: Path, database_url: str) -> Round:
    """Release ``n`` copies of ``command`` at once; wait until all serve or fail; kill them all."""
    folder = session.temp_dir("bench-fleet-")
    gate = folder / "gate"
    pods = []
    try:
        for index in range(n):
            port = free_port()
            env = child_env(database_url, PORT=str(port), WEB_CONCURRENCY="1", HOST="127.0.0.1", BENCH_GATE=str(gate))
            output = folder / f"pod{index}.log"
            process = launch(["sh", "-c", GATE, "gate", command], cwd=cwd, env=env, output=output)
            pods.append((process, port, output))
            # free_port() is racy with many pods; the ports are reserved by the time they bind
        time.sleep(0.3)  # every shell is waiting at the gate
        gate.touch()
        opened = time.perf_counter()
        pending = {index: pod for index, pod in enumerate(pods)}
        ready_at: dict[int, float] = {}
        failed: set[int] = set()
        while pending and time.perf_counter() - opened < READY_TIMEOUT:
            for index, (process, port, _) in list(pending.items()):
                if process.poll() is not None:
                    failed.add(index)
                    del pending[index]
                elif http_status(f"http://127.0.0.1:{port}/readyz", timeout=1.0) == 200:
                    ready_at[index] = time.perf_counter() - opened
                    del pending[index]
            time.sleep(0.02)
        failed.update(pending)  # never ready within the timeout
    finally:
        stop_many([process for process, _, _ in pods])
    logs = [output.read_text(errors="replace") for _, _, output in pods]
    return Round(
        failures=len(failed),
        all_ready=max(ready_at.values()) if not failed else None,
        lock_waits=sum(log.count("waiting for lock") for log in logs),
        causes=Counter(failure_cause(logs[index]) for index in failed),
        applied_once=False,
    )


def failure_cause(log: str) -> str:
    """What a failed pod died of: the driver's error class and the object it names, if any."""
    errors = re.findall(r"psycopg2\.errors\.(\w+)\)?[: ]+([^\n]*)", log)
    if not errors:
        return "never ready" if "Traceback" not in log else "traceback"
    name, message = errors[-1]
    target = re.search(r'"(pg_type\w*|alembic_version\w*|\w+_pkey)"', message)
    return f"{name} ({target.group(1)})" if target else name


def applied_once(database_url: str, ledger: bool) -> bool:
    """alembic_version at head and (with the ledger) exactly one 'up' row per shipped revision."""
    if query(database_url, "SELECT to_regclass('alembic_version')") == [(None,)]:
        return False  # no pod got as far as its first revision
    version = query(database_url, "SELECT version_num FROM alembic_version")
    if [row[0] for row in version] != [HEAD]:
        return False
    if not ledger:
        return True
    rows = query(
        database_url, "SELECT revision, count(*) FROM migration_history WHERE direction = 'up' GROUP BY revision"
    )
    return dict(rows) == dict.fromkeys(REVISIONS, 1)


def fleet_bars(results: dict[tuple[str, int, str], Tally], scenario: str) -> list[plots.FleetBar]:
    """The figure's bars of one scenario: ours and the peer per fleet size."""
    bars = []
    for (kind, n, name), tally in results.items():
        if kind == scenario:
            times = tally.times
            bars.append(
                plots.FleetBar(
                    pods=n,
                    who="ours (entrypoint.sh)" if name == OURS else PEER,
                    median=times.median if times.values else None,
                    low=times.min if times.values else None,
                    high=times.max if times.values else None,
                    failed=tally.failures,
                    started=n * len(tally.rounds),
                )
            )
    return bars


def main() -> int:
    session.begin("bench/fleet.py", __doc__)
    pod_counts = [int(s) for s in (os.environ.get("BENCH_FLEET_SIZES") or "").split(",") if s.strip()]
    forced_counts = bool(pod_counts)
    if not pod_counts:
        pod_counts = [2] if sizes.SMOKE else [1, 4, 8, 16]
    forced_rounds = int(os.environ.get("BENCH_ROUNDS") or 0)

    def rounds(scenario: str, n: int, name: str) -> int:
        if forced_rounds:
            return forced_rounds
        if sizes.SMOKE:
            return 1
        if n >= 16 and scenario == "empty":
            # The goal is about ours; the peer's crashes show after a round or two.
            return sizes.size(20, 3) if name == OURS else sizes.size(2, 1)
        if n == 8 and scenario == "head":
            return sizes.size(3, 2)  # the goal's ratio: a median of 3
        # No goal on the other sizes: one round each shows the trend (keeps fleet.py near 6 minutes).
        return 1

    peer_repo = stock_peer_repository()
    seed = "bench/peers/seed_entrypoint.sh"
    who = {
        OURS: ("./entrypoint.sh", REPO, True),
        PEER: (seed, peer_repo, False),
    }
    results: dict[tuple[str, int, str], Tally] = {}
    head_db = session.create_database()
    flask(head_db, "db", "upgrade").check()
    started = time.perf_counter()
    for scenario in ("empty", "head"):
        # At head, 16 at once adds nothing the goal needs (time for 8): skipped unless asked for.
        for n in (
            pod_counts if scenario == "empty" or forced_counts else [n for n in pod_counts if n < 16] or pod_counts
        ):
            for index in range(max(rounds(scenario, n, name) for name in who)):
                order = list(who) if index % 2 == 0 else list(reversed(who))
                for name in [name for name in order if index < rounds(scenario, n, name)]:
                    command, cwd, ledger = who[name]
                    url = session.create_database() if scenario == "empty" else head_db
                    result = start_fleet(n, command, cwd, url)
                    result.applied_once = applied_once(url, ledger)
                    results.setdefault((scenario, n, name), Tally()).add(result)
                    if scenario == "empty":
                        session.drop_database(url)
            print(f"  ... {scenario} x{n} done ({time.perf_counter() - started:.0f}s)", flush=True)
    session.drop_database(head_db)

    rows = []
    for (scenario, n, name), tally in results.items():
        times = tally.times
        peer_tally = results[(scenario, n, PEER)]
        ratio = times.median / peer_tally.times.median if peer_tally.times.values and times.values else "-"
        rows.append(
            [
                scenario,
                n,
                name,
                len(tally.rounds),
                f"{tally.failures}/{n * len(tally.rounds)}",
                tally.failed_rounds,
                times.median if times.values else "-",
                times.min if times.values else "-",
                times.max if times.values else "-",
                ratio if name == OURS else 1.0,
                sum(r.lock_waits for r in tally.rounds),
                ", ".join(
                    f"{cause} x{count}" for cause, count in sum((r.causes for r in tally.rounds), Counter()).items()
                )
                or "-",
                "yes" if all(r.applied_once for r in tally.rounds) else "NO",
            ]
        )
    report.print_table(
        "Fleet start: N pods released at once (ours and the lock-free peer alternating)",
        [
            "database",
            "N",
            "who",
            "rounds",
            "failed pods",
            "rounds w/ failure",
            "all ready median s",
            "min s",
            "max s",
            "ratio vs peer",
            "'waiting for lock' lines",
            "failed pods died of",
            "at head, each revision once",
        ],
        rows,
    )
    print(
        "\n'all ready' counts only rounds in which every pod served. The peer has no ledger: for it "
        "only alembic_version is checked. Rounds alternate ours/peer while both have rounds left."
    )
    plots.fleet_start_times(
        "fleet_start.png",
        f"N pods released at once: time until all serve ({sizes.MODE} mode)",
        {
            "empty database (every pod tries to migrate)": fleet_bars(results, "empty"),
            "database at head (nothing to apply)": fleet_bars(results, "head"),
        },
        "Bars: median over the rounds in which every pod served; whiskers: min-max. "
        "Red: pods that crashed or never became ready.",
    )
    print()
    biggest = max(pod_counts)
    ours_big = results[("empty", biggest, OURS)]
    report.goal(
        f"ours: failed pods in {len(ours_big.rounds)} rounds of {biggest} on an empty database", ours_big.failures, 0
    )
    eight = 8 if 8 in pod_counts else biggest
    ours8, peer8 = results[("head", eight, OURS)].times, results[("head", eight, PEER)].times
    if ours8.values and peer8.values:
        report.goal(f"time for {eight} at head, ours / peer (median)", ours8.median / peer8.median, 0.7)
    return 0


if __name__ == "__main__":
    sys.exit(main())
