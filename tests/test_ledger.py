"""The ledger: what ran, from which file, and what it lets an older image do."""

from __future__ import annotations

import hashlib
import socket

import pytest
from sqlalchemy import create_engine, inspect, pool, text

from tests.helpers import (
    HEAD,
    INITIAL,
    REPO,
    REVISIONS,
    add_revision,
    copy_repository,
    flask,
    query,
    run,
    wait_for_http,
)
from tests.test_entrypoint import start, stop

NEWER = "fff000000001"


def seed_alarm(url: str) -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO market (id, name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at)"
                " VALUES (7, '남대문시장', '서울', 37.559, 126.977, 60, 126, '2026-01-01', '2026-01-01')"
            )
        )
        c.execute(
            text(
                "INSERT INTO market_alarm_log (market_id, alarm_type, target_date, title, message, created_at,"
                " sent_to_devices) VALUES (7, 'COLD', '2026-01-10', '한파', '한파 경보', '2026-01-09', 3)"
            )
        )
    engine.dispose()


@pytest.fixture
def newer_image(tmp_path):
    """The next image: this repository plus one revision that adds a column."""
    repo = copy_repository(tmp_path / "newer")
    add_revision(
        repo,
        NEWER,
        "op.add_column('market_alarm_log', sa.Column('priority', sa.Integer(), nullable=True))",
        "op.drop_column('market_alarm_log', 'priority')",
        message="Add priority to MarketAlarmLog",
    )
    return repo


def test_each_step_is_recorded_with_checksum_source_and_origin(database_url):
    assert flask(database_url, "db", "upgrade", APP_VERSION="1.2.3").returncode == 0
    assert flask(database_url, "db", "downgrade", APP_VERSION="1.2.3").returncode == 0
    assert flask(database_url, "db", "stamp", "head", "--yes", APP_VERSION="1.2.3").returncode == 0
    rows = query(
        database_url,
        "SELECT revision, down_revisions, direction, filename, checksum, source, duration_ms, app_version, hostname"
        " FROM migration_history ORDER BY id",
    )
    parents = ["", *REVISIONS[:-1]]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        *[(rev, parent, "up") for rev, parent in zip(REVISIONS, parents, strict=True)],
        (HEAD, REVISIONS[-2], "down"),
        (HEAD, REVISIONS[-2], "stamp"),
    ]
    for revision, _, _, filename, checksum, source, duration, version, host in rows[:-1]:
        path = next((REPO / "migrations/versions").glob(f"*{revision}*.py"))
        assert filename == path.name and source == path.read_text()
        assert checksum == hashlib.sha256(path.read_bytes()).hexdigest()
        assert duration >= 0 and version == "1.2.3" and host == socket.gethostname()


def test_edited_applied_migration_is_refused_at_start(tmp_path, pg_url):
    repo = copy_repository(tmp_path / "repo")
    assert flask(pg_url, "db", "upgrade", cwd=repo).returncode == 0
    edited = next((repo / "migrations/versions").glob(f"*{INITIAL}*.py"))
    edited.write_text(edited.read_text() + "\n# tweaked after deploy\n")
    refused = run(["./entrypoint.sh"], cwd=repo, database_url=pg_url)
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert f"applied migration files were edited after they ran: {INITIAL} ({edited.name})" in last
    assert "MIGRATION_ALLOW_CHANGED=1" in last

    process, port = start(pg_url, cwd=repo, MIGRATION_ALLOW_CHANGED="1")
    wait_for_http(f"http://127.0.0.1:{port}/readyz", process)
    code, output = stop(process)
    assert code == 0 and "edited after they ran" in output


def test_older_image_starts_on_a_database_ahead_and_reports_it(newer_image, pg_url):
    assert flask(pg_url, "db", "upgrade", cwd=newer_image).returncode == 0
    process, port = start(pg_url)  # this repository is the older image now
    ready = wait_for_http(f"http://127.0.0.1:{port}/readyz", process).json()
    code, output = stop(process)
    assert code == 0
    assert f"database migration: database is ahead of this image (at {NEWER}, image head {HEAD})" in output
    assert ready["schema"]["state"] == "ahead" and ready["schema"]["foreign"] == [NEWER]

    refused = run(["./entrypoint.sh"], database_url=pg_url, MIGRATION_ON_AHEAD="fail")
    assert refused.returncode == 1
    assert "refusing to start (MIGRATION_ON_AHEAD=fail)" in refused.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("target", [HEAD, "-1"])
def test_older_image_downgrades_through_revisions_it_never_shipped(newer_image, database_url, target):
    assert flask(database_url, "db", "upgrade", cwd=newer_image).returncode == 0
    seed_alarm(database_url)
    assert NEWER not in flask(database_url, "db", "history").stdout  # the old image really lacks it
    current = flask(database_url, "db", "current").stdout  # yet it can name the revision, and says where it is
    assert f"{NEWER} (ahead of this code's head {HEAD})" in current and "(head)" not in current

    result = flask(database_url, "db", "downgrade", target)
    assert result.returncode == 0, result.stderr
    assert f"using the ledger's stored source of {NEWER}" in result.stderr
    assert f"Running downgrade {NEWER} -> {HEAD}" in result.stderr

    check = flask(database_url, "db", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert query(database_url, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as c:
        assert "priority" not in {col["name"] for col in inspect(c).get_columns("market_alarm_log")}
    engine.dispose()
    assert query(
        database_url, "SELECT market_id, alarm_type, title, message, sent_to_devices FROM market_alarm_log"
    ) == [(7, "COLD", "한파", "한파 경보", 3)]
    assert query(database_url, "SELECT name FROM market") == [("남대문시장",)]
    assert query(database_url, "SELECT direction FROM migration_history ORDER BY id DESC LIMIT 1") == [("down",)]
    # and the newer image can go forward again
    assert flask(database_url, "db", "upgrade", cwd=newer_image).returncode == 0


def test_unknown_revision_is_named_not_a_traceback(pg_url):
    assert flask(pg_url, "db", "upgrade").returncode == 0
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    with engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = 'deadbeef0000'"))
    engine.dispose()
    result = run(["./entrypoint.sh"], database_url=pg_url)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "Can't locate revision deadbeef0000: neither this image nor the ledger knows it" in last
    assert "Traceback" not in result.stderr
