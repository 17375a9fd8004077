"""SIGKILL a migration at random moments, 20 times (fixed seed), and check the next run repairs everything.

Two databases, ten kills each (the two tests run in parallel under xdist).
Each round starts the database at a random point of the chain (base or an
intermediate revision, seeded with market rows when the table exists), starts
a real ``flask db upgrade``, and kills it with SIGKILL either at a random
moment after start (import, connect, lock) or a random moment after it took
the migration lock (inside the steps). Then the next real ``flask db upgrade``
must succeed, the schema must match the models exactly (``flask db check``,
in-process each round and as the real command at the end), the ledger's
up-rows must agree with alembic_version, and no seeded row may be lost.
"""

from __future__ import annotations

import random
import signal
import threading
import time

import flask_migrate
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, pool, text

from safe_migrations.scripts import alembic_config
from tests.conftest import make_app
from tests.helpers import HEAD, REVISIONS, flask, start_flask

KILLS_PER_DATABASE = 10


def killed_upgrade(url: str, rng: random.Random, pending: list[str]) -> dict:
    """Start ``flask db upgrade``, SIGKILL it at a random moment; describe what was interrupted.

    A third of the kills land at a random time after start (import, connect,
    lock); the rest the moment a randomly chosen pending step starts, plus up
    to 10 ms (the steps themselves take milliseconds).
    """
    process = start_flask(url, "db", "upgrade")
    target = rng.choice(pending) if pending and rng.random() < 2 / 3 else None
    lines: list[str] = []
    step_started = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if target and f"-> {target}," in line and "Running upgrade" in line:
                step_started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if target is None:
        moment = f"{(delay := rng.uniform(0.2, 1.2)):.2f}s after start"
        time.sleep(delay)
    else:
        step_started.wait(timeout=30)
        moment = f"{(delay := rng.uniform(0.0, 0.01)) * 1000:.0f}ms into {target}"
        time.sleep(delay)
    finished = process.poll() is not None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    reader.join(timeout=10)
    running = [line.split("Running upgrade", 1)[1].strip() for line in lines if "Running upgrade" in line]
    return {
        "moment": moment,
        "killed": not finished,
        "in_flight": running[-1].split(",")[0] if running else "before the first step",
    }


def state(url: str) -> tuple[str | None, set[str], int | None]:
    """(alembic_version, revisions the ledger says are up, market rows)."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as c:
            names = inspect(c).get_table_names()
            version = (
                c.execute(text("SELECT version_num FROM alembic_version")).scalar()
                if "alembic_version" in names
                else None
            )
            up: set[str] = set()
            if "migration_history" in names:
                latest = c.execute(
                    text(
                        "SELECT DISTINCT ON (revision) revision, direction FROM migration_history "
                        "ORDER BY revision, id DESC"
                    )
                ).all()
                up = {revision for revision, direction in latest if direction in ("up", "baseline")}
            markets = c.execute(text("SELECT count(*) FROM market")).scalar() if "market" in names else None
        return version, up, markets
    finally:
        engine.dispose()


def seed_markets(url: str, count: int, round_: int) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as c:
        for n in range(count):
            c.execute(
                text(
                    "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at) "
                    "VALUES (:name, '서울', 37.5665, 126.978, 60, 127, now(), now())"
                ),
                {"name": f"kill {round_} market {n}"},
            )
    engine.dispose()


@pytest.mark.parametrize("seed", [20261126, 7])
def test_sigkilled_migrations_are_repaired_by_the_next_run(pg_url, seed):
    rng = random.Random(seed)
    app = make_app(pg_url)
    config = alembic_config(app)
    report = []
    for round_ in range(KILLS_PER_DATABASE):
        start = rng.choice(["base", *REVISIONS[:-1]])
        with app.app_context():
            if state(pg_url)[0] is None and start != "base":
                flask_migrate.upgrade(revision=start)
            elif state(pg_url)[0] != start:
                # The seeded markets go with the tables: confirmed, as `flask db downgrade --yes` does.
                flask_migrate.downgrade(revision=start, x_arg="confirm_data_loss=yes")
        if start != "base":
            seed_markets(pg_url, 5, round_)
        _, _, seeded = state(pg_url)

        pending = REVISIONS if start == "base" else REVISIONS[REVISIONS.index(start) + 1 :]
        kill = killed_upgrade(pg_url, rng, pending)
        after_kill = state(pg_url)[0]
        recovery = flask(pg_url, "db", "upgrade")
        version, up, markets = state(pg_url)
        with app.app_context():
            command.check(config)  # what `flask db check` runs: raises on any difference
        report.append(
            f"round {round_:2d}: from {start:12s} killed={kill['killed']!s:5s} {kill['moment']:26s} "
            f"last step started: {kill['in_flight'][:30]:30s} left at {after_kill} -> next run {recovery.returncode}, "
            f"at {version}, markets {seeded} -> {markets}"
        )
        assert recovery.returncode == 0, "\n".join(report) + "\n" + recovery.stderr
        assert "Traceback" not in recovery.stderr, recovery.stderr
        assert version == HEAD
        assert up == set(REVISIONS), (up, "ledger disagrees with alembic_version")
        assert markets == (seeded or 0), "rows lost"
    with app.app_context():
        from models import db

        db.engine.dispose()
    check = flask(pg_url, "db", "check")
    killed = sum(" killed=True " in line for line in report)
    print(f"\nseed {seed}: {KILLS_PER_DATABASE} SIGKILLs injected ({killed} while running), all repaired:")
    print("\n".join(report))
    assert check.returncode == 0, check.stderr
    assert killed >= KILLS_PER_DATABASE * 0.7  # most kills really hit a running migration
