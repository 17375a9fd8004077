"""A rolling update under load: failed requests with post-deploy revisions, and without.

The scenario, played twice on fresh PostgreSQL databases, through real
``entrypoint.sh`` processes (gunicorn) of two image trees:

1. the previous image (the shipped code) migrates and serves;
2. a steady read/write load runs against it (``GET /api/v1/markets`` and
   ``POST /api/v1/markets``, every request timed);
3. the new image starts against the same database. Its models no longer map
   ``market.address``; it ships an expand revision (add ``market.note``) and a
   contract revision (drop ``market.address``, marked reviewed_destructive);
4. once the new image is ready, both serve the load (as a Service does during a
   rolling update); then the previous image leaves the endpoints and stops;
5. the post-deploy step runs (``flask db upgrade`` of the new tree, as the
   post-deploy Job does), and the new image keeps serving.

Rows: "post-deploy" marks the contract revision ``post_deploy = True`` (pod
start-up leaves it for step 5); "naive" is the same rollout with the contract
revision an ordinary one (applied at the new pod's start-up, while the previous
image still maps the column). Per row: requests, failed requests (any answer
but 2xx, or no answer), p99 latency, and the same per image.

The "rename" rows play the same rollout for a column the API reads and writes:
the new image maps ``Market.address`` to a ``street_address`` column, with the
two revisions ``flask db migrate --rename market.address:street_address``
writes (an expand revision at start-up, a post-deploy contract in step 5). The
writers create markets with an address and change the addresses of the markets
they created; after step 5 every acknowledged address must be in
``street_address`` ("values lost": rows whose last acknowledged value is not
there). The naive rename row applies ``alter_column(new_column_name=...)`` at
the new pod's start-up (an ordinary revision marked ``reviewed_contract`` so
that the gates let the deliberate mistake through).

Goal: 0 failed requests with post-deploy revisions and with the rename, no
value lost; the naive rows show what they save.

Run::

    .venv/bin/python bench/rollout.py
    BENCH_QUICK=1 .venv/bin/python bench/rollout.py

``BENCH_DATABASE_URL`` names the PostgreSQL server; ``BENCH_PHASE_SECONDS``
overrides how long each phase of the load lasts.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report, session, sizes
from tests import helpers
from tests.helpers import HEAD

API_TOKEN = "bench-token"
EXPAND, CONTRACT = "5e1ec7ed0001", "5e1ec7ed0002"
RENAME, RENAME_MESSAGE = "market.address:street_address", "Rename market.address to street_address"
NAIVE_RENAME = "5e1ec7ed0003"
# What the new image changes in its copy of the code: the models stop mapping
# market.address (and map the new market.note); the API stops offering address.
NEW_CODE = {
    "models.py": [
        (
            "    address: Mapped[str | None] = mapped_column(String(255))\n",
            "    note: Mapped[str | None] = mapped_column(String(255))\n",
        )
    ],
    "weather/schemas.py": [
        ("    address = Text(255, allow_none=True, load_default=None)\n", ""),
        ("    address = Text(255, allow_none=True)\n", ""),
        ("    address = fields.String(allow_none=True)\n", ""),
    ],
}


def _revision_file(revision: str, message: str, header: str, upgrade: str, downgrade: str) -> str:
    return (
        f'"""{message}"""\n\nfrom alembic import op\nimport sqlalchemy as sa\n\n'
        f"revision = {revision!r}\n{header}\n\n"
        f"def upgrade():\n    {upgrade}\n\n\ndef downgrade():\n    {downgrade}\n"
    )


def new_image(target: Path, *, post_deploy: bool) -> Path:
    """A copy of the repository as the next release: new code, an expand and a contract revision.

    With ``post_deploy`` the contract revision starts the post-deploy chain
    (own base, branch label, ``depends_on`` the expand revision, the marker),
    as ``./init_migration.sh --post-deploy`` writes it; without, it follows the
    expand revision on the one chain, as plain ``flask db migrate`` writes it.
    """
    repo = helpers.copy_repository(target)
    for name, replacements in NEW_CODE.items():
        path = repo / name
        text = path.read_text()
        for old, new in replacements:
            if old not in text:
                raise RuntimeError(f"{name} no longer contains {old.strip()!r}: update bench/rollout.py")
            text = text.replace(old, new)
        path.write_text(text)
    versions = repo / "migrations" / "versions"
    (versions / f"29990101_000001_{EXPAND}_add_market_note.py").write_text(
        _revision_file(
            EXPAND,
            "Add market.note (expand)",
            f"down_revision = {HEAD!r}\nbranch_labels = None\ndepends_on = None",
            'op.add_column("market", sa.Column("note", sa.String(length=255), nullable=True))',
            'op.drop_column("market", "note")',
        )
    )
    place = (
        f"down_revision = None\nbranch_labels = ('post_deploy',)\ndepends_on = {EXPAND!r}\n\npost_deploy = True"
        if post_deploy
        else f"down_revision = {EXPAND!r}\nbranch_labels = None\ndepends_on = None\n\n"
        'reviewed_contract = "the naive row of bench/rollout.py: a contract step at start-up, on purpose"'
    )
    (versions / f"29990101_000002_{CONTRACT}_drop_market_address.py").write_text(
        _revision_file(
            CONTRACT,
            "Drop market.address (contract)",
            f'{place}\nreviewed_destructive = "market.address is unused since the new image; backed up"',
            'op.drop_column("market", "address")',
            'op.add_column("market", sa.Column("address", sa.String(length=255), nullable=True))',
        )
    )
    return repo


def renamed_image(target: Path, *, naive: bool) -> tuple[Path, str | None]:
    """A copy of the repository whose models map ``market.street_address``; returns it and its contract revision.

    Its revisions are those ``flask db migrate --rename`` writes; ``naive``
    instead renames in place at start-up (no contract revision: None).
    """
    repo = helpers.copy_repository(target)
    helpers.rename_address_column(repo)
    if naive:
        helpers.add_revision(
            repo,
            NAIVE_RENAME,
            'op.alter_column("market", "address", new_column_name="street_address")',
            'op.alter_column("market", "street_address", new_column_name="address")',
            header='\nreviewed_contract = "the naive row of bench/rollout.py: a rename at start-up, on purpose"',
            message="Rename market.address to street_address (naive)",
        )
        return repo, None
    return repo, helpers.generate_rename(repo, (RENAME,), RENAME_MESSAGE)[1]


# --------------------------------------------------------------------------- the HTTP load


@dataclass
class Answer:
    image: str
    kind: str
    start: float
    latency: float
    failed: str | None  # None, or what went wrong (status or error)


_names = itertools.count(1)


def _send(port: int, method: str, path: str, body: dict | None = None) -> tuple[str | None, dict | None]:
    """One request: (None, its JSON answer) when it succeeded, else (what failed, None)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if body is None:
            connection.request(method, path)
        else:
            headers = {"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"}
            connection.request(method, path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if not 200 <= response.status < 300:
            return f"HTTP {response.status}", None
        return None, json.loads(answer)
    except (OSError, ValueError) as exc:
        return type(exc).__name__, None
    finally:
        connection.close()


def _new_market(address: str | None = None) -> dict:
    body = {"name": f"market {next(_names)}", "region": "서울", "latitude": 37.57, "longitude": 126.99}
    return body if address is None else {**body, "address": address}


class Addresses:
    """The address each market should have: the last value a 2xx answer acknowledged.

    Each writer thread changes only the markets it created, so its requests on
    one market are in order; a market whose write got no clear answer is left
    out of the check (and the failure is counted as such).
    """

    def __init__(self) -> None:
        self.expected: dict[int, str] = {}
        self.uncertain: set[int] = set()
        self._lock = threading.Lock()

    def write(self, port: int, own: list[int], turn: int) -> str | None:
        """Create a market with an address, or (every other turn) change the address of one of ``own``."""
        if own and turn % 2:
            market = own[turn % len(own)]
            address = f"{turn} Jong-ro, market {market}"
            failed, _ = _send(port, "PATCH", f"/api/v1/markets/{market}", {"address": address})
        else:
            market, address = None, f"{turn} Sejong-daero"
            failed, answer = _send(port, "POST", "/api/v1/markets", _new_market(address))
            if answer is not None:
                market = int(answer["id"])
                own.append(market)
        with self._lock:
            if market is not None and failed is None:
                self.expected[market] = address
            elif market is not None:
                self.uncertain.add(market)
        return failed

    def wrong(self, url: str, column: str) -> tuple[int, int]:
        """(rows whose ``column`` is not the acknowledged value, rows checked)."""
        found = dict(helpers.query(url, f"SELECT id, {column} FROM market"))
        checked = {m: a for m, a in self.expected.items() if m not in self.uncertain}
        return sum(1 for m, a in checked.items() if found.get(m) != a), len(checked)


class HttpLoad:
    """Client threads (readers and writers) spreading requests over the images in service,
    as a Kubernetes Service does; an image leaves service before it stops."""

    def __init__(self, readers: int = 2, writers: int = 1, pause: float = 0.01, addresses: bool = False) -> None:
        self.kinds = ["read"] * readers + ["write"] * writers
        self.pause = pause
        self.addresses = Addresses() if addresses else None
        self.answers: list[Answer] = []
        self._serving: dict[str, int] = {}
        self._in_flight: dict[str, int] = {}
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def add(self, image: str, port: int) -> None:
        with self._lock:
            self._serving[image] = port

    def remove(self, image: str) -> None:
        """Take ``image`` out of service and wait for its requests in flight."""
        with self._lock:
            self._serving.pop(image, None)
            self._lock.wait_for(lambda: self._in_flight.get(image, 0) == 0, timeout=60)

    def __enter__(self) -> HttpLoad:
        for index, kind in enumerate(self.kinds):
            thread = threading.Thread(target=self._work, args=(kind, index), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _work(self, kind: str, index: int) -> None:
        turn = itertools.count(index)
        mine: list[Answer] = []
        own: list[int] = []  # markets this writer created
        while not self._stop.is_set():
            with self._lock:
                images = sorted(self._serving)
                if not images:
                    image = None
                else:
                    image = images[next(turn) % len(images)]
                    port = self._serving[image]
                    self._in_flight[image] = self._in_flight.get(image, 0) + 1
            if image is None:
                time.sleep(self.pause)
                continue
            start = time.perf_counter()
            if kind == "read":
                failed, _ = _send(port, "GET", "/api/v1/markets?limit=20")
            elif self.addresses is not None:
                failed = self.addresses.write(port, own, len(mine))
            else:
                failed, _ = _send(port, "POST", "/api/v1/markets", _new_market())
            mine.append(Answer(image, kind, start, time.perf_counter() - start, failed))
            with self._lock:
                self._in_flight[image] -= 1
                self._lock.notify_all()
            time.sleep(self.pause)
        with self._lock:
            self.answers.extend(mine)


# --------------------------------------------------------------------------- one rollout


@dataclass
class Figures:
    requests: int
    failures: int
    p99_ms: float
    failed_examples: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, answers: list[Answer]) -> Figures:
        failed = [a for a in answers if a.failed]
        return cls(
            requests=len(answers),
            failures=len(failed),
            p99_ms=report.percentile([a.latency for a in answers], 0.99) * 1000,
            failed_examples=sorted({f"{a.image} {a.kind}: {a.failed}" for a in failed})[:5],
        )


@dataclass
class Rollout:
    """What one rolling update did: figures overall and per image, and what the logs said."""

    label: str
    total: Figures
    previous: Figures
    new: Figures
    new_log: str
    column_during_rollout: bool  # market.address existed while both images served
    readyz_during_rollout: dict  # the new image's /readyz body then
    column_after: bool  # ... and after the post-deploy step
    values_wrong: int | None = None  # rename rows: acknowledged addresses not in street_address at the end
    values_checked: int = 0


def _start(repo: Path, url: str, port: int, log: Path):
    env = helpers.child_env(url, PORT=str(port), WEB_CONCURRENCY="2", API_TOKEN=API_TOKEN, LOG_LEVEL="info")
    return helpers.launch(["./entrypoint.sh"], cwd=repo, env=env, output=log)


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    try:
        helpers.wait_for_http(f"http://127.0.0.1:{port}/readyz", process, timeout=180)
    except AssertionError as exc:
        raise RuntimeError(f"{exc}; its log:\n{log.read_text(errors='replace')[-3000:]}") from None


def _has_address(url: str) -> bool:
    rows = helpers.query(
        url, "SELECT 1 FROM information_schema.columns WHERE table_name = 'market' AND column_name = 'address'"
    )
    return bool(rows)


def _readyz(port: int) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/readyz")
        response = connection.getresponse()
        return {"status_code": response.status, **json.loads(response.read())}
    finally:
        connection.close()


@dataclass
class Trees:
    previous: Path
    post_deploy: Path
    naive: Path


def trees(base: Path) -> Trees:
    """The previous image and the two variants of the new one, under ``base``."""
    return Trees(
        previous=helpers.copy_repository(base / "previous"),
        post_deploy=new_image(base / "new-post-deploy", post_deploy=True),
        naive=new_image(base / "new-naive", post_deploy=False),
    )


def play(
    previous: Path,
    new: Path,
    url: str,
    label: str,
    phase: float,
    readers: int = 2,
    writers: int = 1,
    addresses: bool = False,
) -> Rollout:
    """One rolling update from ``previous`` to ``new`` on the (empty) database at ``url``.

    With ``addresses`` the writers write addresses, checked in ``street_address`` at the end.
    """
    logs = session.temp_dir("rollout-logs-")
    old_port, new_port = helpers.free_port(), helpers.free_port()
    old = _start(previous, url, old_port, logs / "previous.log")
    new_process = None
    try:
        _wait_ready(old_port, old, logs / "previous.log")
        with HttpLoad(readers, writers, addresses=addresses) as load:
            load.add("previous", old_port)
            time.sleep(phase)  # the previous image alone
            new_process = _start(new, url, new_port, logs / "new.log")
            _wait_ready(new_port, new_process, logs / "new.log")
            load.add("new", new_port)
            time.sleep(phase)  # both images serve, as during a rolling update
            column_during = _has_address(url)
            readyz = _readyz(new_port)
            load.remove("previous")  # endpoints updated, then SIGTERM
            helpers.stop(old, grace=30)
            time.sleep(phase / 2)
            job = helpers.flask(url, "db", "upgrade", cwd=new)  # the post-deploy Job
            if job.returncode != 0:
                raise RuntimeError(f"the post-deploy step failed:\n{job.output[-3000:]}")
            time.sleep(phase)  # the new image keeps serving
        column_after = _has_address(url)
        wrong, checked = load.addresses.wrong(url, "street_address") if load.addresses else (None, 0)
    finally:
        helpers.stop(old, grace=5)
        if new_process is not None:
            helpers.stop(new_process, grace=30)
    answers = load.answers
    return Rollout(
        label=label,
        total=Figures.of(answers),
        previous=Figures.of([a for a in answers if a.image == "previous"]),
        new=Figures.of([a for a in answers if a.image == "new"]),
        new_log=(logs / "new.log").read_text(errors="replace"),
        column_during_rollout=column_during,
        readyz_during_rollout=readyz,
        column_after=column_after,
        values_wrong=wrong,
        values_checked=checked,
    )


@dataclass
class Comparison:
    post_deploy: Rollout
    naive: Rollout

    def rows(self) -> Iterator[list[object]]:
        for rollout in (self.post_deploy, self.naive):
            yield [
                rollout.label,
                rollout.total.requests,
                rollout.total.failures,
                rollout.total.p99_ms,
                f"{rollout.previous.failures}/{rollout.previous.requests}",
                f"{rollout.new.failures}/{rollout.new.requests}",
                "-" if rollout.values_wrong is None else f"{rollout.values_wrong}/{rollout.values_checked}",
            ]


HEADERS = [
    "rollout",
    "requests",
    "failed",
    "p99 ms",
    "previous image failed/requests",
    "new image failed/requests",
    "values lost/checked",
]
POST_DEPLOY_LABEL = "post-deploy revision (ours)"
NAIVE_LABEL = "naive: contract step at pod start-up"
RENAME_LABEL = "rename: flask db migrate --rename (ours)"
NAIVE_RENAME_LABEL = "naive rename: alter_column at pod start-up"


def compare(base: Path, urls: tuple[str, str], phase: float, readers: int = 2, writers: int = 1) -> Comparison:
    """Both rollouts, one after the other, each on its own empty database."""
    built = trees(base)
    return Comparison(
        post_deploy=play(built.previous, built.post_deploy, urls[0], POST_DEPLOY_LABEL, phase, readers, writers),
        naive=play(built.previous, built.naive, urls[1], NAIVE_LABEL, phase, readers, writers),
    )


def compare_rename(base: Path, urls: tuple[str, str], phase: float, readers: int = 2, writers: int = 1) -> Comparison:
    """The rename rollout and its naive row, each on its own empty database."""
    previous = helpers.copy_repository(base / "previous")
    ours, _ = renamed_image(base / "new-rename", naive=False)
    naive, _ = renamed_image(base / "new-naive-rename", naive=True)
    return Comparison(
        post_deploy=play(previous, ours, urls[0], RENAME_LABEL, phase, readers, writers, addresses=True),
        naive=play(previous, naive, urls[1], NAIVE_RENAME_LABEL, phase, readers, writers, addresses=True),
    )


def main() -> int:
    session.begin("bench/rollout.py", __doc__)
    phase = float(os.environ.get("BENCH_PHASE_SECONDS") or sizes.size(20, 6, 2))
    readers, writers = sizes.size(4, 2, 1), sizes.size(2, 1, 1)
    with session.temp_database() as first, session.temp_database() as second:
        result = compare(session.temp_dir("rollout-"), (first, second), phase, readers, writers)
    with session.temp_database() as first, session.temp_database() as second:
        renamed = compare_rename(session.temp_dir("rollout-rename-"), (first, second), phase, readers, writers)
    report.print_table(
        f"A rolling update under load ({readers} readers + {writers} writer threads, {phase:g} s per phase)",
        HEADERS,
        [*result.rows(), *renamed.rows()],
    )
    for rollout in (result.post_deploy, result.naive, renamed.post_deploy, renamed.naive):
        for example in rollout.total.failed_examples:
            print(f"  {rollout.label}: {example}")
    print(
        "\nEach naive row is the baseline of the row above it: the same rollout, the contract step (the drop, "
        "the rename) applied by the new pod's start-up while the previous image still maps market.address."
    )
    report.goal("post-deploy rollout: failed requests", result.post_deploy.total.failures, 0)
    report.goal(
        "naive rollout: failed requests of the previous image", result.naive.previous.failures, 1, lower_is_better=False
    )
    report.goal("rename rollout: failed requests", renamed.post_deploy.total.failures, 0)
    lost = renamed.post_deploy.values_wrong
    report.goal("rename rollout: addresses lost", float("inf") if lost is None else lost, 0)
    report.goal(
        "naive rename: failed requests of the previous image",
        renamed.naive.previous.failures,
        1,
        lower_is_better=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
