"""The migration lock: one holder, named waiters, a key per database (many pods at once: test_fleet_storm.py)."""

from __future__ import annotations

from sqlalchemy import create_engine, pool, text

from safe_migrations.lock import lock_key, migration_lock
from tests.helpers import HEAD, REVISIONS, flask, free_port, start_flask


def ledger_and_version(url: str) -> tuple[list[tuple[str, int]], list[str]]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as c:
        applied = c.execute(
            text("SELECT revision, count(*) FROM migration_history WHERE direction = 'up' GROUP BY revision")
        ).all()
        version = list(c.execute(text("SELECT version_num FROM alembic_version")).scalars())
    engine.dispose()
    return sorted(tuple(r) for r in applied), version


def test_waiter_names_the_holder_and_gives_up(pg_url):
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    with engine.connect() as holder:
        holder.execute(text("SELECT set_config('application_name', 'manual-maintenance', false)"))
        holder.commit()
        with migration_lock(holder, wait_seconds=1):
            result = flask(pg_url, "db", "upgrade", MIGRATION_LOCK_WAIT="1.5")
    engine.dispose()
    assert result.returncode == 1
    assert "database migration: waiting for lock held by pid" in result.stderr
    assert "(application_name manual-maintenance)" in result.stderr
    assert "gave up after" in result.stderr and "MIGRATION_LOCK_WAIT=1.5" in result.stderr
    assert "Traceback" not in result.stderr


def test_waiter_proceeds_when_the_holder_releases(pg_url):
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    with engine.connect() as holder:
        lock = migration_lock(holder, wait_seconds=1)
        lock.__enter__()
        process = start_flask(pg_url, "db", "upgrade")
        assert process.stderr is not None
        lines = []
        released = False
        for line in process.stderr:
            lines.append(line)
            if "waiting for lock held by pid" in line and not released:
                lock.__exit__(None, None, None)  # release only once the waiter has said it waits
                released = True
        process.wait(timeout=60)
    engine.dispose()
    output = "".join(lines)
    assert process.returncode == 0, output
    assert released and "lock acquired" in output
    applied, version = ledger_and_version(pg_url)
    assert version == [HEAD] and len(applied) == len(REVISIONS)


def test_lock_key_differs_per_database(new_pg_database):
    first, second = new_pg_database(), new_pg_database()
    assert lock_key(first.rsplit("/", 1)[1]) != lock_key(second.rsplit("/", 1)[1])
    engine = create_engine(first, poolclass=pool.NullPool)
    with engine.connect() as holder, migration_lock(holder, wait_seconds=1):
        result = flask(second, "db", "upgrade", MIGRATION_LOCK_WAIT="2")
        assert result.returncode == 0, result.stderr
        assert "waiting for lock" not in result.stderr
    engine.dispose()


def test_migration_database_url_is_used_for_migrations(pg_url, tmp_path):
    unreachable_app_url = f"postgresql://app:pw@127.0.0.1:{free_port()}/nowhere"
    result = flask(unreachable_app_url, "db", "upgrade", MIGRATION_DATABASE_URL=pg_url)
    assert result.returncode == 0, result.stderr
    applied, version = ledger_and_version(pg_url)
    assert version == [HEAD] and len(applied) == len(REVISIONS)
