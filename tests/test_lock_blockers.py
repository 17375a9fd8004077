"""A lock wait names the real blocker, and a concurrent build's wait names the INVALID index it leaves.

On PostgreSQL, in process: the revision waits for a session that reads
``device`` in a long transaction. An ordinary ALTER names that table and
session (never the table's indexes); a concurrent index build, which waits for
old snapshots rather than for a table lock, names the old transaction (pid,
application, state, age) and the INVALID index left behind, which the rerun
drops and rebuilds once the transaction is gone.
"""

from __future__ import annotations

import re

import pytest
from alembic import command
from sqlalchemy import create_engine, pool, text

from safe_migrations.runtime import MigrationFailed
from tests.helpers import HEAD, add_revision, query, scalar
from tests.support.inprocess import migration_config

CONCURRENT = (
    "from safe_migrations.operations import create_index_concurrently",
    "create_index_concurrently('ix_device_platform', 'device', ['platform'])",
)
ALTER = "op.add_column('device', sa.Column('locale', sa.String(10), nullable=True))"


@pytest.fixture
def at_head(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT", "0.3")
    monkeypatch.setenv("MIGRATION_LOCK_RETRIES", "0")
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    with migration_config(pg_url, versions) as config:
        command.upgrade(config, HEAD)
    return tmp_path


def long_report(url: str, isolation: str):
    """A session named long-report, inside a transaction that read ``device``."""
    engine = create_engine(url, poolclass=pool.NullPool, isolation_level=isolation)
    connection = engine.connect()
    connection.execute(text("SELECT set_config('application_name', 'long-report', false)"))
    connection.execute(text("SELECT count(*) FROM device"))
    pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return engine, connection, pid


def test_a_concurrent_build_names_the_old_transaction_and_the_invalid_index(pg_url, at_head):
    add_revision(at_head, "lck000000001", CONCURRENT[1], header=CONCURRENT[0])
    engine, blocker, pid = long_report(pg_url, "REPEATABLE READ")  # holds its snapshot
    try:
        with migration_config(pg_url, at_head / "migrations" / "versions") as config:
            with pytest.raises(MigrationFailed) as failed:
                command.upgrade(config, "heads")
            said = str(failed.value)
            assert re.fullmatch(
                r"revision lck000000001 failed: lock_timeout \(0.3s\) hit 1 times, giving up; the concurrent index "
                rf"build waits for older transactions to end: pid {pid} \(long-report, idle in transaction, "
                r"transaction open \d+s\); it left INVALID index ix_device_platform behind \(the rerun drops and "
                rf"rebuilds it\); the database stays at {HEAD}",
                said,
            ), said
            assert "table" not in said
            blocker.rollback()
            command.upgrade(config, "heads")  # the old transaction is gone: the rerun rebuilds it
    finally:
        blocker.close()
        engine.dispose()
    valid = "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :n"
    assert scalar(pg_url, valid, {"n": "ix_device_platform"}) is True
    assert query(pg_url, "SELECT version_num FROM alembic_version") == [("lck000000001",)]


def test_a_refused_table_lock_names_the_table_and_its_holder_not_its_indexes(pg_url, at_head):
    add_revision(at_head, "lck000000002", ALTER)
    engine, blocker, pid = long_report(pg_url, "READ COMMITTED")  # ACCESS SHARE on device until it ends
    try:
        with (
            migration_config(pg_url, at_head / "migrations" / "versions") as config,
            pytest.raises(MigrationFailed) as failed,
        ):
            command.upgrade(config, "heads")
    finally:
        blocker.close()
        engine.dispose()
    said = str(failed.value)
    assert re.search(
        rf"giving up; table device locked by pid {pid} \(long-report, idle in transaction, transaction open \d+s, "
        r"AccessShareLock\); the database stays at ",
        said,
    ), said
    assert "pk_device" not in said and "uq_device_push_token" not in said
