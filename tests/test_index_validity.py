"""No index PostgreSQL left INVALID is ever recorded as applied (issue: a failed unique concurrent build).

The revision below is Alembic's documented way to build an index concurrently,
on a column with duplicates: the build fails with PostgreSQL's DETAIL; the
rerun (IF NOT EXISTS) drops the invalid index and fails again for the same
reason instead of printing "applied"; once the duplicates are gone it builds a
valid index that refuses a duplicate.
"""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import MetaData
from sqlalchemy.exc import IntegrityError

from safe_migrations.doctor import diagnose
from safe_migrations.runtime import MigrationFailed
from tests.helpers import HEAD, add_revision, execute, query, scalar
from tests.support.inprocess import migration_config

DOCUMENTED_WAY = """
with op.get_context().autocommit_block():
    op.create_index('uq_market_region', 'market', ['region'], unique=True,
                    postgresql_concurrently=True, if_not_exists=True)
"""
SWALLOWED = """
with op.get_context().autocommit_block():
    try:
        op.create_index('ix_swallowed', 'market', ['region'], unique=True, postgresql_concurrently=True)
    except Exception:
        pass
"""
MARKET = (
    "INSERT INTO market (name, region, latitude, longitude, grid_nx, grid_ny, created_at, updated_at) "
    "VALUES ('{name}', '{region}', 37.5, 127.0, 60, 127, now(), now())"
)
VALIDITY = "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = :name"


@pytest.fixture
def versions(tmp_path):
    folder = tmp_path / "migrations" / "versions"
    folder.mkdir(parents=True)
    return tmp_path


def two_markets_in_one_region(url: str) -> None:
    execute(url, MARKET.format(name="Gwangjang", region="Seoul"), MARKET.format(name="Namdaemun", region="Seoul"))


def test_a_failed_unique_concurrent_build_is_never_recorded_and_the_fix_works(pg_url, versions):
    add_revision(versions, "idx000000001", DOCUMENTED_WAY, message="Unique market per region")
    with migration_config(pg_url, versions / "migrations" / "versions") as config:
        command.upgrade(config, HEAD)
        two_markets_in_one_region(pg_url)

        with pytest.raises(MigrationFailed) as first:
            command.upgrade(config, "heads")
        said = str(first.value)
        assert said.startswith("revision idx000000001 failed: could not create unique index")
        assert "DETAIL: Key (region)=(Seoul) is duplicated." in said
        assert "it left INVALID index uq_market_region behind (the rerun drops and rebuilds it)" in said
        assert said.endswith(f"the database stays at {HEAD}")

        # The rerun: IF NOT EXISTS no longer skips the broken index; same failure, nothing recorded.
        with pytest.raises(MigrationFailed) as second:
            command.upgrade(config, "heads")
        assert "DETAIL: Key (region)=(Seoul) is duplicated." in str(second.value)
        assert scalar(pg_url, "SELECT version_num FROM alembic_version") == HEAD
        assert query(pg_url, "SELECT 1 FROM migration_history WHERE revision = 'idx000000001'") == []

        # The fix the line gives: remove the duplicates, upgrade again.
        execute(pg_url, "DELETE FROM market WHERE id = (SELECT max(id) FROM market)")
        command.upgrade(config, "heads")
    assert scalar(pg_url, VALIDITY, {"name": "uq_market_region"}) is True
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == "idx000000001"
    with pytest.raises(IntegrityError):
        execute(pg_url, MARKET.format(name="Tongin", region="Seoul"))


def test_an_invalid_index_the_revision_ignored_fails_the_revision_before_it_is_recorded(pg_url, versions):
    add_revision(versions, "idx000000002", SWALLOWED)
    with migration_config(pg_url, versions / "migrations" / "versions") as config:
        command.upgrade(config, HEAD)
        two_markets_in_one_region(pg_url)
        with pytest.raises(MigrationFailed) as refused:
            command.upgrade(config, "heads")
    assert str(refused.value) == (
        "revision idx000000002 failed: index ix_swallowed on market is INVALID: Key (region)=(Seoul) is "
        "duplicated (2 rows); remove the duplicate rows, then run `flask db upgrade` again (the "
        f"rerun drops the invalid index and rebuilds it); the database stays at {HEAD}"
    )
    assert scalar(pg_url, "SELECT version_num FROM alembic_version") == HEAD
    assert query(pg_url, "SELECT 1 FROM migration_history WHERE revision = 'idx000000002'") == []


def test_doctor_at_head_gives_a_fix_that_works_for_an_invalid_index(pg_url):
    with migration_config(pg_url) as config:
        command.upgrade(config, "heads")
        two_markets_in_one_region(pg_url)
        with pytest.raises(IntegrityError):  # a build outside any revision: nothing to rerun
            query(pg_url, "CREATE UNIQUE INDEX CONCURRENTLY uq_market_region ON market (region)")
        checks = {check.name: check for check in diagnose(config, pg_url, MetaData(), None)}
    found = checks["indexes"]
    assert not found.ok
    assert found.details == ["index uq_market_region on market is INVALID: Key (region)=(Seoul) is duplicated (2 rows)"]
    assert (
        found.fix == "fix the cause, then rebuild without blocking writes: REINDEX INDEX CONCURRENTLY uq_market_region"
    )
    execute(pg_url, "DELETE FROM market WHERE id = (SELECT max(id) FROM market)")
    query(pg_url, "REINDEX INDEX CONCURRENTLY uq_market_region")  # the fix doctor gave
    assert scalar(pg_url, VALIDITY, {"name": "uq_market_region"}) is True
