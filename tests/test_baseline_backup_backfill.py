"""Adopting an existing database, backups, destructive steps and batched backfills."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, pool, text

from models import MarketAlarmLog
from safe_migrations.backfill import backfill
from tests.helpers import HEAD, add_revision, copy_repository, execute, flask, run, scalar, wait_for_http
from tests.test_entrypoint import start, stop


def existing_database(url: str) -> None:
    """A database built by the app before migrations were adopted: the schema without history."""
    assert flask(url, "db", "upgrade").returncode == 0
    execute(url, "DROP TABLE alembic_version", "DROP TABLE migration_history")


def test_baseline_stamps_a_matching_database(pg_url):
    existing_database(pg_url)
    result = flask(pg_url, "db", "baseline")
    assert result.returncode == 0, result.stderr
    assert "stamped head" in result.stdout
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == HEAD
    assert scalar(pg_url, "SELECT direction FROM migration_history") == "baseline"
    again = flask(pg_url, "db", "baseline")
    assert again.returncode == 1 and "already has migration history" in again.stderr


def test_baseline_refuses_a_mismatching_database(pg_url):
    existing_database(pg_url)
    execute(pg_url, "ALTER TABLE market ADD COLUMN legacy_code varchar(10)", "DROP INDEX ix_market_region")
    result = flask(pg_url, "db", "baseline")
    assert result.returncode == 1
    assert "nothing was stamped" in result.stderr
    assert "remove_column market.legacy_code" in result.stderr and "add_index market.ix_market_region" in result.stderr
    assert scalar(pg_url, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'alembic_version'") == 0


def test_backup_writes_a_dump_pg_restore_reads(pg_url, tmp_path):
    assert flask(pg_url, "db", "upgrade").returncode == 0
    result = flask(pg_url, "db", "backup", BACKUP_DIR=str(tmp_path / "backups"))
    assert result.returncode == 0, result.stderr
    dumps = list((tmp_path / "backups").glob("*.dump"))
    assert len(dumps) == 1
    database = pg_url.rsplit("/", 1)[1]
    assert dumps[0].name.startswith(f"{database}_{HEAD}_") and dumps[0].name.endswith("Z.dump")
    assert f"backup written: {dumps[0]}" in result.stdout
    listing = subprocess.run(["pg_restore", "--list", str(dumps[0])], capture_output=True, text=True, check=True)
    assert "TABLE public market_alarm_log" in listing.stdout


def test_backup_refuses_sqlite(sqlite_url, tmp_path):
    result = flask(sqlite_url, "db", "backup", BACKUP_DIR=str(tmp_path))
    assert result.returncode == 1
    assert "PostgreSQL only" in result.stderr and "copy the database file" in result.stderr
    assert not list(tmp_path.glob("*.dump"))


DROP_MESSAGE = (
    "op.drop_column('market_alarm_log', 'message')",
    "op.add_column('market_alarm_log', sa.Column('message', sa.Text(), nullable=True))",
)


def test_destructive_revision_is_refused_at_start_unless_reviewed(tmp_path, pg_url):
    repo = copy_repository(tmp_path / "repo")
    models = repo / "models.py"
    models.write_text(models.read_text().replace("    message: Mapped[str] = mapped_column(Text)\n", ""))
    path = add_revision(repo, "ddd000000001", *DROP_MESSAGE)
    assert flask(pg_url, "db", "upgrade", HEAD, cwd=repo).returncode == 0
    refused = run(["./entrypoint.sh"], cwd=repo, database_url=pg_url)
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert "refusing revision ddd000000001" in last and "drop_column market_alarm_log.message" in last
    assert "flask db backup" in last
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == HEAD  # nothing applied

    path.write_text(path.read_text() + '\nreviewed_destructive = "message moved to the push service; backed up"\n')
    process, port = start(pg_url, cwd=repo)
    wait_for_http(f"http://127.0.0.1:{port}/readyz", process)
    code, output = stop(process)
    assert code == 0 and "revision ddd000000001 is destructive, reviewed" in output
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == "ddd000000001"


@pytest.fixture
def filled(database_url):
    assert flask(database_url, "db", "upgrade").returncode == 0
    execute(
        database_url,
        "INSERT INTO market (id, name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at)"
        " VALUES (1, 'm', 'r', 37.5, 127.0, 60, 127, '2026-01-01', '2026-01-01')",
    )
    engine = create_engine(database_url, poolclass=pool.NullPool)
    types = ("HEAT", "COLD", "RAIN", "WIND", "SNOW")
    rows = [
        {
            "id": i + 1,
            "market_id": 1,
            "alarm_type": types[i % 5],
            "target_date": date(2000, 1, 1) + timedelta(days=i // 5),
            "title": "x",
            "message": "m",
            "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            "sent_to_devices": 0,
        }
        for i in range(100_000)
    ]
    with engine.begin() as c:
        # A Core insert of many rows is sent as multi-row VALUES batches.
        c.execute(MarketAlarmLog.__table__.insert(), rows)
    engine.dispose()
    return database_url


def test_backfill_updates_in_batches_and_resumes(filled):
    engine = create_engine(filled, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        # An interrupted first run: only the first 30,000 keys done.
        c.execute(text("UPDATE market_alarm_log SET sent_to_devices = 1 WHERE id <= 30000"))
        updated = backfill(
            c, "market_alarm_log", "sent_to_devices = 1", pending="sent_to_devices = 0", batch_size=7_000
        )
        assert updated == 70_000
        assert c.execute(text("SELECT count(*) FROM market_alarm_log WHERE sent_to_devices = 1")).scalar() == 100_000
        assert backfill(c, "market_alarm_log", "sent_to_devices = 2", pending="sent_to_devices = 5") == 0
    engine.dispose()


def test_backfill_rejects_bad_identifiers(sqlite_url):
    assert flask(sqlite_url, "db", "upgrade").returncode == 0
    engine = create_engine(sqlite_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as c, pytest.raises(ValueError, match="not a plain SQL identifier"):
        backfill(c, "market_alarm_log; DROP TABLE market", "x = 1", pending="true")
    engine.dispose()


def test_documented_batched_update_revision_on_100000_rows(filled, tmp_path):
    repo = copy_repository(tmp_path / "repo")
    add_revision(
        repo,
        "eee000000001",
        "batched_update('market_alarm_log', 'sent_to_devices = 1', pending='sent_to_devices = 0', batch_size=7000)",
        header="from safe_migrations.operations import batched_update",
        message="Mark old alarms as delivered",
    )
    execute(filled, "UPDATE market_alarm_log SET sent_to_devices = 1 WHERE id <= 30000")  # an earlier, cut-off run
    result = flask(filled, "db", "upgrade", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "backfill market_alarm_log: 70000 rows" in result.stderr
    assert scalar(filled, "SELECT count(*) FROM market_alarm_log WHERE sent_to_devices = 1") == 100_000
    assert scalar(filled, "SELECT version_num FROM alembic_version") == "eee000000001"
    lint = flask(filled, "db", "lint", "eee000000001", cwd=repo)
    assert lint.returncode == 0, lint.stdout
