"""Each revision is atomic and polite: timeouts, retries, failures, kills, concurrent indexes."""

from __future__ import annotations

import signal
import time

import pytest
from sqlalchemy import create_engine, inspect, pool, text

from tests.helpers import add_revision, copy_repository, flask, start_flask

ADD_PRIORITY = "op.add_column('market_alarm_log', sa.Column('priority', sa.Integer(), nullable=True))"
DROP_PRIORITY = "op.drop_column('market_alarm_log', 'priority')"


@pytest.fixture
def repo(tmp_path):
    return copy_repository(tmp_path / "repo")


def state(url: str) -> tuple[list[str], set[str], list[str]]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as c:
        version = list(c.execute(text("SELECT version_num FROM alembic_version")).scalars())
        columns = {col["name"] for col in inspect(c).get_columns("market_alarm_log")}
        ledger = list(
            c.execute(text("SELECT revision || ':' || direction FROM migration_history ORDER BY id")).scalars()
        )
    engine.dispose()
    return version, columns, ledger


def test_lock_timeout_is_retried_then_fails_cleanly(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    add_revision(repo, "bbb000000001", ADD_PRIORITY, DROP_PRIORITY)
    before = state(pg_url)
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    with engine.connect() as blocker:
        blocker.execute(text("SELECT set_config('application_name', 'long-report', false)"))
        blocker.execute(text("SELECT count(*) FROM market_alarm_log"))  # holds ACCESS SHARE until rollback
        pid = blocker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        result = flask(pg_url, "db", "upgrade", cwd=repo, MIGRATION_LOCK_TIMEOUT="0.2", MIGRATION_LOCK_RETRIES="2")
        blocker.rollback()
    engine.dispose()
    assert result.returncode == 1
    assert result.stderr.count("hit lock_timeout") == 2  # two retries logged
    last = result.stderr.strip().splitlines()[-1]
    assert "revision bbb000000001 failed" in last
    assert f"table market_alarm_log locked by pid {pid} (long-report" in last
    assert "Traceback" not in result.stderr
    assert state(pg_url) == before


def test_lock_released_mid_way_lets_the_retry_succeed(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    add_revision(repo, "bbb000000002", ADD_PRIORITY, DROP_PRIORITY)
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    blocker = engine.connect()
    blocker.execute(text("SELECT count(*) FROM market_alarm_log"))
    process = start_flask(pg_url, "db", "upgrade", cwd=repo, MIGRATION_LOCK_TIMEOUT="0.3", MIGRATION_LOCK_RETRIES="5")
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "hit lock_timeout" in line:
            blocker.rollback()  # the blocking transaction ends while the migration waits to retry
    process.wait(timeout=60)
    blocker.close()
    engine.dispose()
    output = "".join(lines)
    assert process.returncode == 0, output
    assert output.count("hit lock_timeout") == 1
    version, columns, ledger = state(pg_url)
    assert version == ["bbb000000002"] and "priority" in columns
    assert ledger[-1] == "bbb000000002:up"


def test_a_revision_that_raises_half_way_changes_nothing(repo, database_url):
    assert flask(database_url, "db", "upgrade", cwd=repo).returncode == 0
    add_revision(repo, "bbb000000003", ADD_PRIORITY + "\nraise RuntimeError('boom half-way')", DROP_PRIORITY)
    before = state(database_url)
    result = flask(database_url, "db", "upgrade", cwd=repo)
    assert result.returncode != 0 and "boom half-way" in result.stderr
    assert state(database_url) == before


def test_sigkill_mid_migration_releases_the_lock_and_the_next_run_completes(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    add_revision(repo, "bbb000000004", ADD_PRIORITY + "\nop.execute('SELECT pg_sleep(60)')", DROP_PRIORITY)
    before = state(pg_url)
    process = start_flask(pg_url, "db", "upgrade", cwd=repo)
    engine = create_engine(pg_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as watcher:
        sleeping = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND state = 'active'"
        deadline = time.monotonic() + 30
        while watcher.execute(text(sleeping)).scalar_one() == 0:
            assert time.monotonic() < deadline, "the slow migration never started"
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 20
        advisory = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        while watcher.execute(text(advisory)).scalar_one() or watcher.execute(text(sleeping)).scalar_one():
            assert time.monotonic() < deadline, "the killed migration's session was not cleaned up"
            time.sleep(0.2)
    engine.dispose()
    assert state(pg_url) == before

    (next(repo.glob("migrations/versions/*bbb000000004*"))).write_text(
        (next(repo.glob("migrations/versions/*bbb000000004*"))).read_text().replace("pg_sleep(60)", "pg_sleep(0)")
    )
    result = flask(pg_url, "db", "upgrade", cwd=repo)
    assert result.returncode == 0, result.stderr
    version, columns, _ = state(pg_url)
    assert version == ["bbb000000004"] and "priority" in columns


CONCURRENT_UNIQUE = (
    "create_index_concurrently('uq_alarm_title', 'market_alarm_log', ['title'], unique=True)",
    "drop_index_concurrently('uq_alarm_title', 'market_alarm_log')",
)
HEADER = "from safe_migrations.operations import create_index_concurrently, drop_index_concurrently"


def test_concurrent_index_failure_leaves_invalid_index_that_the_retry_cleans(repo, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO market (id, name, region, latitude, longitude, grid_nx, grid_ny, created_at, "
                "updated_at) VALUES (1, 'm', 'r', 37.5, 127.0, 60, 127, now(), now())"
            )
        )
        for day in (1, 2):
            c.execute(
                text(
                    "INSERT INTO market_alarm_log (market_id, alarm_type, target_date, title, message, "
                    f"created_at) VALUES (1, 'HEAT', '2026-07-0{day}', 'same', 'm', now())"
                )
            )
    add_revision(repo, "bbb000000005", *CONCURRENT_UNIQUE, header=HEADER)
    failed = flask(pg_url, "db", "upgrade", cwd=repo)
    assert failed.returncode != 0 and "could not create unique index" in failed.stderr

    doctor = flask(pg_url, "db", "doctor", cwd=repo)
    assert "invalid index(es) left by an interrupted CREATE INDEX CONCURRENTLY: uq_alarm_title" in doctor.stdout

    with engine.begin() as c:
        c.execute(text("UPDATE market_alarm_log SET title = 'other' WHERE target_date = '2026-07-02'"))
    retried = flask(pg_url, "db", "upgrade", cwd=repo)
    assert retried.returncode == 0, retried.stderr
    assert "dropping invalid index uq_alarm_title" in retried.stderr
    with engine.connect() as c:
        valid = c.execute(
            text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid "
                "WHERE x.relname = 'uq_alarm_title'"
            )
        ).scalar_one()
    engine.dispose()
    assert valid is True
    version, _, ledger = state(pg_url)
    assert version == ["bbb000000005"] and ledger[-1] == "bbb000000005:up"
    assert flask(pg_url, "db", "downgrade", cwd=repo).returncode == 0
