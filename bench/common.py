"""Shared helpers for the benchmarks: databases, timing, tables, processes, load.

Every benchmark creates its own uniquely named PostgreSQL databases on the
server named by ``BENCH_DATABASE_URL`` (default: the local test server) and
drops them when it ends. Every process a benchmark starts runs in its own
process group and is killed when the benchmark ends, however it ends.

Sizes: ``BENCH_QUICK=1`` selects a quick mode (minutes -> tens of seconds),
``BENCH_SMOKE=1`` the tiniest sizes (the smoke test: proves a script runs).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import itertools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
VERSIONS = REPO / "migrations" / "versions"


@dataclass(frozen=True)
class Revision:
    """One shipped migration file: its revision id and the first line of its docstring."""

    revision: str
    title: str
    path: Path


def shipped_revisions(versions: Path = VERSIONS) -> tuple[Revision, ...]:
    """The shipped revisions, oldest first, read from the migration file names.

    Files are named ``YYYYMMDD_HHMMSS_<rev>_<slug>.py`` (init_migration.sh's
    file_template), so their names sort by creation and the revision id is the
    third ``_``-separated field. Each file is checked to declare that revision
    and to follow the previous one (one linear chain, no second head).
    """
    found, previous = [], None
    for path in sorted(versions.glob("[0-9]*_*_*_*.py")):
        revision = path.name.split("_")[2]
        source = path.read_text()
        if f'revision = "{revision}"' not in source:
            raise RuntimeError(f"{path.name}: the file name says revision {revision}, the file does not")
        if f"down_revision = {previous!r}".replace("'", '"') not in source:
            raise RuntimeError(f"{path.name}: down_revision is not {previous} (the previous file)")
        title = source.split('"""')[1].strip().splitlines()[0] if source.startswith('"""') else revision
        found.append(Revision(revision, title, path))
        previous = revision
    if not found:
        raise RuntimeError(f"no migration files in {versions}")
    return tuple(found)


SHIPPED = shipped_revisions()
SHIPPED_REVISIONS = tuple(r.revision for r in SHIPPED)
INITIAL, HEAD = SHIPPED_REVISIONS[0], SHIPPED_REVISIONS[-1]

# The entrypoint's pre-start work alone (wait, report, lock check, upgrade,
# drift), as ``python -c PREPARE`` runs it in a fresh process.
PREPARE = (
    "from pathlib import Path\n"
    "from safe_migrations.settings import MigrationSettings\n"
    "from safe_migrations.startup import configure_logging, load_app, prepare\n"
    "configure_logging(Path('migrations'))\n"
    "prepare(load_app('app:create_app()'), MigrationSettings.from_env())\n"
)

SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")
QUICK = SMOKE or os.environ.get("BENCH_QUICK", "") not in ("", "0")
MODE = "smoke" if SMOKE else "quick" if QUICK else "full"


def size(full: int, quick: int, smoke: int | None = None) -> int:
    """The size for the current mode (full, BENCH_QUICK=1 or BENCH_SMOKE=1)."""
    if SMOKE:
        return quick if smoke is None else smoke
    return quick if QUICK else full


# --------------------------------------------------------------------------- databases


def _normalise(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


ADMIN_URL = _normalise(os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))


def libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq URI (for psycopg2.connect)."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def admin_execute(*statements: str) -> None:
    """Run statements on the admin database in autocommit mode."""
    import psycopg2

    connection = psycopg2.connect(libpq(ADMIN_URL))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


_created_databases: list[str] = []


def create_database() -> str:
    """A fresh, empty database; returns its SQLAlchemy URL. Dropped at exit at the latest."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin_execute(f'CREATE DATABASE "{name}"')
    _created_databases.append(name)
    return _with_database(ADMIN_URL, name)


def drop_database(url: str) -> None:
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if name in _created_databases:
        _created_databases.remove(name)


@contextlib.contextmanager
def temp_database() -> Iterator[str]:
    """A fresh database for the ``with`` block, dropped afterwards."""
    url = create_database()
    try:
        yield url
    finally:
        drop_database(url)


def _drop_all_databases() -> None:
    for name in list(_created_databases):
        with contextlib.suppress(Exception):
            admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(url: str, sql: str, params: Sequence | None = None) -> list[tuple]:
    """Rows of one query on ``url`` (autocommit)."""
    import psycopg2

    connection = psycopg2.connect(libpq(url))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        connection.close()


# --------------------------------------------------------------------------- repository copies


_temp_dirs: list[Path] = []


def temp_dir(prefix: str = "bench-") -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _temp_dirs.append(path)
    return path


def copy_repository(target: Path | None = None) -> Path:
    """A copy of the project's code and migrations (no venv, no git, no instance data)."""
    target = target or temp_dir() / "repo"
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "instance", "__pycache__", ".pytest_cache", ".ruff_cache", "backups"
    )
    shutil.copytree(REPO, target, ignore=ignore)
    return target


def stock_peer_repository() -> Path:
    """A repository copy whose migrations/env.py is Flask-Migrate's own template: no lock,
    no ledger, no timeouts -- the team's original, lock-free set-up."""
    import flask_migrate

    repo = copy_repository()
    template = Path(flask_migrate.__file__).parent / "templates" / "flask" / "env.py"
    shutil.copyfile(template, repo / "migrations" / "env.py")
    return repo


# --------------------------------------------------------------------------- processes


def child_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    """Our environment with the venv first on PATH, pointed at ``database_url``."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("FLASK_APP", None)
    env.setdefault("LOG_LEVEL", "info")
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    env.update(extra)
    return env


_processes: list[subprocess.Popen] = []


def launch(
    args: Sequence[str], *, cwd: Path = REPO, env: dict[str, str], output: Path | None = None
) -> subprocess.Popen:
    """Start ``args`` in its own process group; output goes to ``output`` (or is discarded)."""
    sink = open(output, "wb") if output is not None else subprocess.DEVNULL  # noqa: SIM115 - closed in kill()
    process = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=sink,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    process._bench_sink = sink  # type: ignore[attr-defined]
    _processes.append(process)
    return process


def kill(process: subprocess.Popen, grace: float = 10.0) -> int | None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; return the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    # The group may outlive its leader (gunicorn workers): always make sure it is gone.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    sink = getattr(process, "_bench_sink", None)
    if sink not in (None, subprocess.DEVNULL):
        sink.close()
    if process in _processes:
        _processes.remove(process)
    return process.returncode


def kill_many(processes: Sequence[subprocess.Popen], grace: float = 10.0) -> None:
    """``kill`` for many at once: SIGTERM every group first, then wait for them together
    (a fleet of gunicorns shuts down in parallel, not one grace period after another)."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.perf_counter() + grace
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.perf_counter()))
    for process in processes:
        kill(process, grace=0.0)


def kill_all() -> None:
    for process in list(_processes):
        with contextlib.suppress(Exception):
            kill(process, grace=3.0)


def run(args: Sequence[str], *, cwd: Path = REPO, env: dict[str, str], timeout: float = 300) -> tuple[int, str, float]:
    """Run to completion (own process group, killed on timeout); return (code, output, seconds)."""
    output = temp_dir("bench-out-") / "output.log"
    started = time.perf_counter()
    process = launch(args, cwd=cwd, env=env, output=output)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = -1
    elapsed = time.perf_counter() - started
    kill(process)
    return code, output.read_text(errors="replace"), elapsed


def flask(cwd: Path, database_url: str, *args: str, check: bool = True, **env: str) -> tuple[int, str, float]:
    """``flask ARGS`` in repository ``cwd`` against ``database_url``."""
    code, output, elapsed = run([str(BIN / "flask"), *args], cwd=cwd, env=child_env(database_url, **env))
    if check and code != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed ({code}):\n{output[-3000:]}")
    return code, output, elapsed


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(port: int, path: str = "/readyz", timeout: float = 2.0) -> int | None:
    """The HTTP status of GET ``path`` on localhost:``port``, or None if nothing answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 60.0, poll: float = 0.01) -> float | None:
    """Seconds (perf_counter) at which /readyz first answered 200, or None (exited or timed out)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            return None
        if http_status(port) == 200:
            return time.perf_counter()
        time.sleep(poll)
    return None


# --------------------------------------------------------------------------- statistics and tables


@dataclass
class Series:
    """Repeated measurements of one thing (seconds unless ``unit`` says otherwise)."""

    name: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def max(self) -> float:
        return max(self.values) if self.values else float("nan")


def alternate(runs: int, measures: dict[str, Callable[[], float]]) -> dict[str, Series]:
    """Run each measure ``runs`` times, alternating them (ABAB..., first one flipped each round)."""
    series = {name: Series(name) for name in measures}
    names = list(measures)
    for index in range(runs):
        order = names if index % 2 == 0 else list(reversed(names))
        for name in order:
            series[name].values.append(measures[name]())
    return series


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A GitHub-flavoured Markdown table (pastes straight into bench/README.md)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    texts = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in texts)) if texts else len(str(h)) for i, h in enumerate(headers)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in texts:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


def series_table(title: str, series: Sequence[Series], peer: Series, unit: str = "s", scale: float = 1.0) -> None:
    """Median/min/max per series and each one's median ratio against ``peer``."""
    rows = [
        [s.name, len(s.values), s.median * scale, s.min * scale, s.max * scale, s.median / peer.median] for s in series
    ]
    print_table(title, ["what", "runs", f"median {unit}", f"min {unit}", f"max {unit}", "ratio vs peer"], rows)


def goal(label: str, value: float, limit: float, *, lower_is_better: bool = True) -> bool:
    met = value <= limit if lower_is_better else value >= limit
    sign = "<=" if lower_is_better else ">="
    print(f"goal: {label} = {value:.3f} (goal {sign} {limit:g}): {'MET' if met else 'NOT MET'}")
    sys.stdout.flush()
    return met


def begin(name: str, doc: str | None) -> None:
    """Print the benchmark's heading; kill our processes and drop our databases on any signal."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    summary = (doc or "").strip().splitlines()[0] if doc else name
    print(f"## {name} ({MODE} mode, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})\n\n{summary}")
    sys.stdout.flush()


# --------------------------------------------------------------------------- concurrent load


@dataclass
class Request:
    kind: str
    start: float
    latency: float
    error: str | None = None


Operation = Callable[["object", random.Random, int], None]
# A number no request of any load in this process has had (unique keys for inserts).
_unique = itertools.count(1)


class Load:
    """Threads on their own psycopg2 connections (autocommit), each running its operation in a
    loop with a short pause and recording every request's start and latency."""

    def __init__(self, url: str, workers: dict[str, Operation], pause: float = 0.002) -> None:
        self.url, self.workers, self.pause = libpq(url), workers, pause
        self.requests: list[Request] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def __enter__(self) -> Load:
        ready = threading.Barrier(len(self.workers) + 1)
        for index, (kind, operation) in enumerate(self.workers.items()):
            thread = threading.Thread(target=self._work, args=(kind, operation, index, ready), daemon=True)
            thread.start()
            self._threads.append(thread)
        ready.wait(30)
        time.sleep(0.2)  # warm up: plans cached, connections busy
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)

    def _work(self, kind: str, operation: Operation, index: int, ready: threading.Barrier) -> None:
        import psycopg2

        connection = psycopg2.connect(self.url, application_name=f"bench load {kind}")
        connection.autocommit = True
        rng, mine = random.Random(index), []
        try:
            with connection.cursor() as cursor:
                ready.wait(30)
                while not self._stop.is_set():
                    start = time.perf_counter()
                    error = None
                    try:
                        operation(cursor, rng, next(_unique))
                    except psycopg2.Error as exc:
                        error = type(exc).__name__
                    mine.append(Request(kind, start, time.perf_counter() - start, error))
                    time.sleep(self.pause)
        finally:
            connection.close()
            with self._lock:
                self.requests.extend(mine)

    def window(self, start: float, end: float) -> list[Request]:
        """Requests that were in flight at some moment of [start, end]."""
        return [r for r in self.requests if r.start <= end and r.start + r.latency >= start]


@dataclass
class Stall:
    """How a concurrent load fared during one window."""

    longest: float
    p99: float
    requests: int
    errors: int

    @classmethod
    def of(cls, requests: Sequence[Request]) -> Stall:
        latencies = [r.latency for r in requests]
        return cls(
            longest=max(latencies, default=float("nan")),
            p99=percentile(latencies, 0.99),
            requests=len(requests),
            errors=sum(1 for r in requests if r.error),
        )


def measure_under_load(
    url: str, workers: dict[str, Operation], action: Callable[[], object], pause: float = 0.005
) -> tuple[Stall, object, float]:
    """Run ``action`` while the load runs: the stall of the requests in flight during it,
    what it returned and how many seconds it took."""
    with Load(url, workers, pause) as load:
        start = time.perf_counter()
        result = action()
        end = time.perf_counter()
        time.sleep(0.05)
    return Stall.of(load.window(start, end)), result, end - start


# --------------------------------------------------------------------------- clean-up, always


def _cleanup() -> None:
    kill_all()
    _drop_all_databases()
    for path in _temp_dirs:
        shutil.rmtree(path, ignore_errors=True)


def _on_signal(signum: int, _frame: object) -> None:
    _cleanup()
    sys.exit(128 + signum)


atexit.register(_cleanup)


# --------------------------------------------------------------------------- the alarm log and its load

MARKETS = 1000


def seed_alarm_log(url: str, rows: int) -> float:
    """``rows`` rows in market_alarm_log (and the markets they need), set-based; returns seconds.

    Each row is one (market, alarm type, target date): row g is market 1 + g % 1000, type
    (g / 1000) % 5 and date 2000-01-01 + g / 5000, so the unique key never collides.
    """
    started = time.perf_counter()
    query(
        url,
        "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at) "
        "SELECT 'market ' || g, 'region ' || (g %% 17), 37.5665, 126.9780, 60, 127, now(), now() "
        "FROM generate_series(1, %s) AS g",
        (MARKETS,),
    )
    query(
        url,
        "INSERT INTO market_alarm_log (market_id, alarm_type, target_date, title, message, created_at) "
        "SELECT 1 + g %% 1000, (ARRAY['RAIN', 'HEAT', 'COLD', 'WIND', 'SNOW'])[1 + (g / 1000) %% 5], "
        "date '2000-01-01' + g / 5000, 'Heavy rain warning ' || g, "
        "'Rain of 30 mm or more is expected tomorrow; cover the stalls. #' || g, "
        "now() - g * interval '1 second' FROM generate_series(0, %s - 1) AS g",
        (rows,),
    )
    query(url, "VACUUM ANALYZE market_alarm_log")
    query(url, "VACUUM ANALYZE market")
    return time.perf_counter() - started


def alarm_log_load(rows: int) -> dict[str, Operation]:
    """The service's traffic on the alarm log: two kinds of reads, inserts, single-row updates.

    Inserts name only the columns of the initial schema, so they work before and after any
    step (new columns must have a default: that is the expand/contract rule).
    """

    def read_one(cursor, rng: random.Random, _: int) -> None:
        cursor.execute("SELECT id, title, target_date FROM market_alarm_log WHERE id = %s", (rng.randint(1, rows),))
        cursor.fetchall()

    def read_market(cursor, rng: random.Random, _: int) -> None:
        cursor.execute(
            "SELECT id, alarm_type, target_date FROM market_alarm_log WHERE market_id = %s "
            "AND alarm_type = 'RAIN' ORDER BY target_date DESC LIMIT 20",
            (rng.randint(1, MARKETS),),
        )
        cursor.fetchall()

    def insert(cursor, rng: random.Random, unique: int) -> None:
        cursor.execute(
            "INSERT INTO market_alarm_log (market_id, alarm_type, target_date, title, message, created_at) "
            "VALUES (%s, 'WIND', date '3000-01-01' + %s, 'Strong wind', 'Tie down the awnings.', now())",
            (rng.randint(1, MARKETS), unique),
        )

    def update(cursor, rng: random.Random, _: int) -> None:
        cursor.execute("UPDATE market_alarm_log SET title = title WHERE id = %s", (rng.randint(1, rows),))

    return {"read by id": read_one, "read by market": read_market, "insert": insert, "update": update}
